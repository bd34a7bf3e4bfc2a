"""SPF verdicts from real SPF records served by the test DNS server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import dns.resolver
import pytest

from provider.dns import make_resolver
from smtp_edge.spf import SpfChecker, SpfResult, check_spf
from tests.dnsserver import TTL, DnsServer

ZONE = {
    "pass.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
    "fail.example": {"TXT": ["v=spf1 ip4:198.51.100.1 -all"]},
    "softfail.example": {"TXT": ["v=spf1 ip4:198.51.100.1 ~all"]},
    "neutral.example": {"TXT": ["v=spf1 ip4:198.51.100.1 ?all"]},
    "nospf.example": {"TXT": ["google-site-verification=abc"], "A": ["192.0.2.1"]},
    "two.example": {"TXT": ["v=spf1 ip4:192.0.2.1 -all", "v=spf1 -all"]},
    "syntax.example": {"TXT": ["v=spf1 ip4:192.0.2.300 -all"]},
    "unknown-mech.example": {"TXT": ["v=spf1 frobnicate -all"]},
    "lookups.example": {
        "TXT": ["v=spf1 " + " ".join(f"include:l{n}.example" for n in range(11)) + " -all"]
    },
    **{f"l{n}.example": {"TXT": ["v=spf1 -all"]} for n in range(11)},
    "include.example": {"TXT": ["v=spf1 include:_spf.provider.example -all"]},
    "_spf.provider.example": {"TXT": ["v=spf1 ip4:203.0.113.0/24 ~all"]},
    "redirect.example": {"TXT": ["v=spf1 redirect=_spf.provider.example"]},
    "a.example": {"TXT": ["v=spf1 a:hosts.a.example -all"]},
    "hosts.a.example": {"A": ["192.0.2.25"], "AAAA": ["2001:db8::25"]},
    "mx.example": {"TXT": ["v=spf1 mx -all"], "MX": ["10 mail.mx.example", "20 backup.example"]},
    "mail.mx.example": {"A": ["192.0.2.40"]},
    "backup.example": {"A": ["192.0.2.41"]},
    "ip6.example": {"TXT": ["v=spf1 ip6:2001:db8:1::/48 -all"]},
    "helo.example": {"TXT": ["v=spf1 a -all"], "A": ["192.0.2.60"]},
    "long.example": {
        "TXT": [
            "v=spf1 " + " ".join(f"ip4:10.{n}.0.0/16" for n in range(40)) + " ip4:192.0.2.0/24 -all"
        ]
    },
    "macro.example": {"TXT": ["v=spf1 exists:%{ir}._spf.%{d} -all"]},
    "7.2.0.192._spf.macro.example": {"A": ["127.0.0.2"]},
    "www.alias.example": {"CNAME": ["pass.example"]},
    "xn--bcher-kva.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
    "servfail-include.example": {"TXT": ["v=spf1 include:broken.example -all"]},
    "slow-chain.example": {
        "TXT": ["v=spf1 " + " ".join(f"include:s{n}.example" for n in range(4)) + " -all"]
    },
    **{f"s{n}.example": {"TXT": ["v=spf1 -all"]} for n in range(4)},
}

SLOW = {f"s{n}.example": 0.3 for n in range(4)}


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONE, servfail={"broken.example"}, delays={"timeout.example": 5, **SLOW}) as srv:
        yield srv


@pytest.fixture
def resolver(server: DnsServer) -> dns.resolver.Resolver:
    return make_resolver(server.nameservers)


def spf(resolver: dns.resolver.Resolver, ip: str, mail_from: str, helo: str = "mta.test") -> str:
    return check_spf(resolver, ip, mail_from, helo).result


def test_listed_address_passes(resolver: dns.resolver.Resolver) -> None:
    assert check_spf(resolver, "192.0.2.7", "alice@pass.example", "mta.test") == SpfResult(
        "pass", "pass.example"
    )


@pytest.mark.parametrize(
    ("domain", "expected"),
    [("fail.example", "fail"), ("softfail.example", "softfail"), ("neutral.example", "neutral")],
)
def test_unlisted_address_gets_the_all_qualifier(
    resolver: dns.resolver.Resolver, domain: str, expected: str
) -> None:
    assert check_spf(resolver, "192.0.2.7", f"bob@{domain}", "mta.test") == SpfResult(
        expected, domain
    )


@pytest.mark.parametrize("domain", ["nospf.example", "nxdomain.example"])
def test_domain_without_spf_record_is_none(resolver: dns.resolver.Resolver, domain: str) -> None:
    assert spf(resolver, "192.0.2.7", f"carol@{domain}") == "none"


@pytest.mark.parametrize(
    "domain", ["two.example", "syntax.example", "unknown-mech.example", "lookups.example"]
)
def test_broken_records_are_permerror(resolver: dns.resolver.Resolver, domain: str) -> None:
    assert spf(resolver, "192.0.2.1", f"dave@{domain}") == "permerror"


def test_more_than_ten_lookups_is_permerror_even_though_each_include_answers(
    resolver: dns.resolver.Resolver, server: DnsServer
) -> None:
    assert spf(resolver, "192.0.2.1", "erin@lookups.example") == "permerror"
    assert ("l9.example", "TXT", "udp") in server.queries
    assert not any(name == "l10.example" for name, _, _ in server.queries)


@pytest.mark.parametrize("domain", ["broken.example", "servfail-include.example"])
def test_servfail_is_temperror(resolver: dns.resolver.Resolver, domain: str) -> None:
    assert spf(resolver, "192.0.2.1", f"frank@{domain}") == "temperror"


def test_dns_timeout_is_temperror(server: DnsServer) -> None:
    resolver = make_resolver(server.nameservers, lifetime=0.3)
    assert check_spf(resolver, "192.0.2.1", "gina@timeout.example", "mta.test") == SpfResult(
        "temperror", "timeout.example"
    )


def test_total_dns_time_of_a_check_is_bounded(resolver: dns.resolver.Resolver) -> None:
    # Each include answers well within the resolver's lifetime; only the check's limit trips.
    assert check_spf(
        resolver, "192.0.2.1", "hank@slow-chain.example", "mta.test", time_limit=0.5
    ) == (SpfResult("temperror", "slow-chain.example"))
    assert spf(resolver, "192.0.2.1", "hank@slow-chain.example") == "fail"


def test_include_passes_for_the_included_domain_addresses(
    resolver: dns.resolver.Resolver,
) -> None:
    assert spf(resolver, "203.0.113.9", "ivy@include.example") == "pass"
    assert spf(resolver, "192.0.2.1", "ivy@include.example") == "fail"


def test_redirect_takes_the_target_domain_result(resolver: dns.resolver.Resolver) -> None:
    assert check_spf(resolver, "203.0.113.9", "jack@redirect.example", "mta.test") == SpfResult(
        "pass", "redirect.example"
    )
    assert spf(resolver, "192.0.2.1", "jack@redirect.example") == "softfail"


def test_a_mechanism_matches_the_named_host_addresses(resolver: dns.resolver.Resolver) -> None:
    assert spf(resolver, "192.0.2.25", "kim@a.example") == "pass"
    assert spf(resolver, "2001:db8::25", "kim@a.example") == "pass"
    assert spf(resolver, "192.0.2.26", "kim@a.example") == "fail"


def test_mx_mechanism_matches_every_mx_host(resolver: dns.resolver.Resolver) -> None:
    assert spf(resolver, "192.0.2.40", "lee@mx.example") == "pass"
    assert spf(resolver, "192.0.2.41", "lee@mx.example") == "pass"
    assert spf(resolver, "192.0.2.42", "lee@mx.example") == "fail"


def test_ip6_mechanism(resolver: dns.resolver.Resolver) -> None:
    assert spf(resolver, "2001:db8:1:2::3", "mo@ip6.example") == "pass"
    assert spf(resolver, "2001:db8:2::3", "mo@ip6.example") == "fail"
    assert spf(resolver, "192.0.2.1", "mo@ip6.example") == "fail"


def test_ipv4_mapped_ipv6_client_is_checked_as_ipv4(resolver: dns.resolver.Resolver) -> None:
    assert spf(resolver, "::ffff:192.0.2.7", "ned@pass.example") == "pass"


def test_null_sender_is_checked_against_the_helo_name(resolver: dns.resolver.Resolver) -> None:
    assert check_spf(resolver, "192.0.2.60", "", "helo.example") == SpfResult(
        "pass", "helo.example"
    )
    assert check_spf(resolver, "192.0.2.61", "", "helo.example") == SpfResult(
        "fail", "helo.example"
    )


@pytest.mark.parametrize("helo", ["localhost", "[192.0.2.60]", ""])
def test_null_sender_with_a_helo_that_is_not_a_domain_is_none_without_lookups(
    resolver: dns.resolver.Resolver, server: DnsServer, helo: str
) -> None:
    assert check_spf(resolver, "192.0.2.60", "", helo) == SpfResult("none", helo)
    assert server.queries == []


def test_spf_record_longer_than_one_dns_string_is_joined(
    resolver: dns.resolver.Resolver,
) -> None:
    assert spf(resolver, "192.0.2.99", "olga@long.example") == "pass"
    assert spf(resolver, "198.51.100.1", "olga@long.example") == "fail"


def test_macros_are_expanded_and_looked_up_through_our_resolver(
    resolver: dns.resolver.Resolver,
) -> None:
    assert spf(resolver, "192.0.2.7", "pam@macro.example") == "pass"
    assert spf(resolver, "192.0.2.8", "pam@macro.example") == "fail"


def test_sender_domain_behind_a_cname(resolver: dns.resolver.Resolver) -> None:
    assert check_spf(resolver, "192.0.2.7", "quinn@www.alias.example", "mta.test") == SpfResult(
        "pass", "www.alias.example"
    )


def test_domain_is_what_follows_the_last_at_sign(resolver: dns.resolver.Resolver) -> None:
    assert check_spf(resolver, "192.0.2.7", '"rob@fail.example"@pass.example', "x.test") == (
        SpfResult("pass", "pass.example")
    )


@pytest.mark.parametrize("ip", ["not-an-ip", "", "192.0.2.300"])
def test_bad_client_address_is_permerror_not_an_exception(
    resolver: dns.resolver.Resolver, ip: str
) -> None:
    assert check_spf(resolver, ip, "sue@pass.example", "mta.test") == SpfResult(
        "permerror", "pass.example"
    )


@pytest.mark.parametrize(
    "mail_from", ["tom@" + "a" * 64 + ".example", "tom@", "tom@..", "tom@localhost"]
)
def test_odd_sender_domains_get_a_definite_result(
    resolver: dns.resolver.Resolver, mail_from: str
) -> None:
    assert spf(resolver, "192.0.2.7", mail_from) == "none"


def test_internationalised_sender_domain_is_looked_up_as_its_a_label(
    resolver: dns.resolver.Resolver,
) -> None:
    assert check_spf(resolver, "192.0.2.7", "tom@bücher.example", "mta.test") == SpfResult(
        "pass", "bücher.example"
    )


def test_async_check_gives_the_same_answer(resolver: dns.resolver.Resolver) -> None:
    result = asyncio.run(SpfChecker(resolver).check("192.0.2.7", "uma@pass.example", "mta.test"))
    assert result == SpfResult("pass", "pass.example")


def test_concurrent_checks_use_their_own_resolvers() -> None:
    # Both servers publish "a:hosts.race.example" but disagree on its address; server one answers
    # the first query late, so server two's whole check runs inside server one's.
    policy = {"TXT": ["v=spf1 a:hosts.race.example -all"]}
    one = {"race.example": policy, "hosts.race.example": {"A": ["192.0.2.1"]}}
    two = {"race.example": policy, "hosts.race.example": {"A": ["192.0.2.2"]}}
    with (
        DnsServer(one, delays={"race.example": 0.3}) as server_one,
        DnsServer(two) as server_two,
    ):
        first = make_resolver(server_one.nameservers)
        second = make_resolver(server_two.nameservers)

        async def both() -> list[SpfResult]:
            return list(
                await asyncio.gather(
                    SpfChecker(first).check("192.0.2.1", "val@race.example", "mta.test"),
                    *(
                        SpfChecker(second).check("192.0.2.1", "val@race.example", "mta.test")
                        for _ in range(3)
                    ),
                )
            )

        results = asyncio.run(both())
        assert [r.result for r in results] == ["pass", "fail", "fail", "fail"]
        assert ("hosts.race.example", "A", "udp") in server_one.queries


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _asked(server: DnsServer, name: str) -> int:
    return sum(1 for asked, _, _ in server.queries if asked == name)


def test_a_senders_later_messages_reuse_the_verdict_until_its_dns_answers_expire(
    resolver: dns.resolver.Resolver, server: DnsServer
) -> None:
    clock = _Clock()
    checker = SpfChecker(resolver, clock=clock)

    async def check() -> SpfResult:
        return await checker.check("203.0.113.5", "ann@include.example", "mta.test")

    assert asyncio.run(check()) == SpfResult("pass", "include.example")
    assert asyncio.run(check()) == SpfResult("pass", "include.example")
    assert (_asked(server, "include.example"), _asked(server, "_spf.provider.example")) == (1, 1)
    clock.now += TTL + 1  # the test server's answers live TTL seconds
    assert asyncio.run(check()) == SpfResult("pass", "include.example")
    assert _asked(server, "include.example") == 2


def test_a_verdict_is_per_client_address_sender_and_helo(
    resolver: dns.resolver.Resolver, server: DnsServer
) -> None:
    checker = SpfChecker(resolver)

    async def checks() -> list[str]:
        return [
            (await checker.check(ip, sender, "mta.test")).result
            for ip, sender in [
                ("192.0.2.7", "ann@pass.example"),
                ("198.51.100.9", "ann@pass.example"),
                ("192.0.2.7", "bob@fail.example"),
            ]
        ]

    assert asyncio.run(checks()) == ["pass", "fail", "fail"]
    assert _asked(server, "pass.example") == 2


def test_a_temperror_is_never_reused(resolver: dns.resolver.Resolver, server: DnsServer) -> None:
    checker = SpfChecker(resolver)

    async def check() -> str:
        return (await checker.check("192.0.2.1", "frank@broken.example", "mta.test")).result

    assert asyncio.run(check()) == "temperror"
    asked_once = _asked(server, "broken.example")
    assert asyncio.run(check()) == "temperror"
    assert _asked(server, "broken.example") > asked_once


def test_the_cache_keeps_only_the_most_recent_verdicts(
    resolver: dns.resolver.Resolver, server: DnsServer
) -> None:
    checker = SpfChecker(resolver, entries=2)

    async def run() -> None:
        for sender in ("a@pass.example", "b@pass.example", "c@pass.example", "a@pass.example"):
            await checker.check("192.0.2.7", sender, "mta.test")

    asyncio.run(run())
    assert _asked(server, "pass.example") == 4  # "a" was pushed out by "c" and asked again
