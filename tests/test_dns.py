"""provider.dns against the real DNS server of tests/dnsserver.py."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from provider.dns import (
    DEFAULT_LIFETIME,
    DnsNoSuchDomain,
    DnsPermanentError,
    DnsTemporaryError,
    lookup_mx,
    lookup_txt,
    make_resolver,
    parse_nameservers,
)
from tests.dnsserver import DnsServer

ZONE = {
    "example.com": {
        "MX": ["20 backup.example.com", "10 MX1.Example.com."],
        "TXT": ["v=spf1 -all", "x" * 600],
        "A": ["192.0.2.1"],
    },
    "alias.example.com": {"CNAME": ["example.com"]},
    "dangling.example.com": {"CNAME": ["gone.example.com"]},
    "nomx.example.com": {"A": ["192.0.2.2"]},
    "nullmx.example.com": {"MX": ["0 ."]},
    "big.example.com": {"TXT": ["k=rsa; p=" + "A" * 3000]},
    "utf8.example.com": {"TXT": ["héllo"]},
}


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONE, servfail={"broken.example.com"}, delays={"slow.example.com": 5}) as srv:
        yield srv


@pytest.fixture
def resolver(server: DnsServer) -> dns.resolver.Resolver:
    return make_resolver(server.nameservers, lifetime=0.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("  ", []),
        ("192.0.2.1", [("192.0.2.1", 53)]),
        ("192.0.2.1:5353", [("192.0.2.1", 5353)]),
        ("2001:db8::1", [("2001:db8::1", 53)]),
        ("[2001:db8::1]", [("2001:db8::1", 53)]),
        ("[::1]:5353", [("::1", 5353)]),
        (" 127.0.0.1:53 , [::1]:54 ", [("127.0.0.1", 53), ("::1", 54)]),
    ],
)
def test_nameserver_settings_accept_ipv4_ipv6_and_ports(
    text: str, expected: list[tuple[str, int]]
) -> None:
    assert parse_nameservers(text) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("dns.example.com", "not an IP address"),
        ("127.0.0.1:", "port must be a number"),
        ("127.0.0.1:0", "port must be a number"),
        ("127.0.0.1:70000", "port must be a number"),
        ("127.0.0.1:dns", "port must be a number"),
        ("127.0.0.1,,127.0.0.2", "empty entry"),
        ("[::1", "expected [IPv6]"),
        ("[::1]5353", "expected [IPv6]"),
        ("[127.0.0.1]:53", "only for IPv6"),
        ("300.1.1.1", "not an IP address"),
    ],
)
def test_nameserver_settings_reject_junk_with_a_clear_message(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        make_resolver(text)


def test_resolver_has_short_timeouts_for_use_inside_smtp() -> None:
    resolver = make_resolver("127.0.0.1:5353")
    assert resolver.lifetime == DEFAULT_LIFETIME <= 3
    assert resolver.timeout <= resolver.lifetime


def test_empty_setting_uses_the_system_resolver_configuration() -> None:
    system = dns.resolver.Resolver(configure=True)
    assert make_resolver("").nameservers == system.nameservers


def test_mx_hosts_come_sorted_by_preference_lowercase_without_final_dot(
    resolver: dns.resolver.Resolver,
) -> None:
    assert lookup_mx(resolver, "example.com") == [
        (10, "mx1.example.com"),
        (20, "backup.example.com"),
    ]


def test_mx_follows_cname(resolver: dns.resolver.Resolver) -> None:
    assert lookup_mx(resolver, "alias.example.com") == [
        (10, "mx1.example.com"),
        (20, "backup.example.com"),
    ]


def test_domain_without_mx_gives_empty_list_for_the_caller_to_fall_back_to_a(
    resolver: dns.resolver.Resolver,
) -> None:
    assert lookup_mx(resolver, "nomx.example.com") == []


def test_null_mx_is_reported_as_a_dot(resolver: dns.resolver.Resolver) -> None:
    assert lookup_mx(resolver, "nullmx.example.com") == [(0, ".")]


@pytest.mark.parametrize("name", ["missing.example.com", "dangling.example.com"])
def test_mx_of_a_missing_domain_is_a_permanent_no_such_domain(
    resolver: dns.resolver.Resolver, name: str
) -> None:
    with pytest.raises(DnsNoSuchDomain):
        lookup_mx(resolver, name)


def test_servfail_is_a_temporary_error(resolver: dns.resolver.Resolver) -> None:
    with pytest.raises(DnsTemporaryError, match="SERVFAIL"):
        lookup_mx(resolver, "broken.example.com")


def test_server_slower_than_the_lifetime_is_a_temporary_error(
    resolver: dns.resolver.Resolver,
) -> None:
    with pytest.raises(DnsTemporaryError, match="timed out"):
        lookup_txt(resolver, "slow.example.com")


def test_malformed_name_is_a_permanent_error(resolver: dns.resolver.Resolver) -> None:
    with pytest.raises(DnsPermanentError, match="not a valid domain name"):
        lookup_mx(resolver, "a" * 64 + ".example.com")


def test_txt_records_are_whole_strings(resolver: dns.resolver.Resolver) -> None:
    assert sorted(lookup_txt(resolver, "example.com")) == ["v=spf1 -all", "x" * 600]


def test_txt_too_big_for_udp_arrives_over_tcp(
    resolver: dns.resolver.Resolver, server: DnsServer
) -> None:
    assert lookup_txt(resolver, "big.example.com") == ["k=rsa; p=" + "A" * 3000]
    assert ("big.example.com", "TXT", "tcp") in server.queries


def test_txt_is_decoded_as_utf8(resolver: dns.resolver.Resolver) -> None:
    assert lookup_txt(resolver, "utf8.example.com") == ["héllo"]


@pytest.mark.parametrize("name", ["missing.example.com", "nomx.example.com"])
def test_txt_of_missing_name_or_missing_records_is_empty(
    resolver: dns.resolver.Resolver, name: str
) -> None:
    assert lookup_txt(resolver, name) == []


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_later_nameserver_answers_when_the_first_is_down(server: DnsServer) -> None:
    resolver = make_resolver(f"127.0.0.1:{_closed_udp_port()},{server.nameservers}")
    assert lookup_mx(resolver, "nomx.example.com") == []
    assert ("nomx.example.com", "MX", "udp") in server.queries


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_ipv6_nameserver_with_port() -> None:
    with DnsServer(ZONE, host="::1") as srv:
        assert srv.nameservers.startswith("[::1]:")
        assert lookup_mx(make_resolver(srv.nameservers), "nullmx.example.com") == [(0, ".")]


def test_test_server_answers_tcp_and_keeps_serving_after_garbage(server: DnsServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00garbage", ("127.0.0.1", server.port))
    query = dns.message.make_query("nomx.example.com", "A")
    reply = dns.query.tcp(query, "127.0.0.1", port=server.port, timeout=2)
    assert [r.to_text() for r in reply.answer[0]] == ["192.0.2.2"]
    missing = dns.query.udp(
        dns.message.make_query("missing.example.com", "A"), "127.0.0.1", port=server.port, timeout=2
    )
    assert missing.rcode() == dns.rcode.NXDOMAIN


def test_test_server_rejects_malformed_zone_data_in_the_test() -> None:
    with pytest.raises(dns.exception.SyntaxError):
        DnsServer({"example.com": {"MX": ["not-a-number mx.example.com"]}})
