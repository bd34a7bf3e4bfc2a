"""ARC chains (RFC 8617) sealed by dkimpy with keys the DNS server on 127.0.0.1 publishes:
`envelope.arc` says pass, fail or none and how many instances the chain has."""

from __future__ import annotations

from collections.abc import Iterator

import dkim
import pytest

from provider.dns import make_resolver
from provider.inbound.envelope import ArcResult
from provider.outbound.dkim import dns_record
from smtp_edge import arc_check
from smtp_edge.auth_results import check_auth
from smtp_edge.txt_cache import Deadline, NotCached, TxtCache
from tests.dnsserver import DnsServer

from .test_dkim_dmarc import KEY, NO_SPF, OTHER_KEY, PUBLIC, message, signed

ZONE = {
    "sel._domainkey.forwarder.example": {"TXT": [dns_record(PUBLIC)]},
    "sel._domainkey.list.example": {"TXT": [dns_record(PUBLIC)]},
    "sel._domainkey.signer.example": {"TXT": [dns_record(PUBLIC)]},
    "revoked._domainkey.forwarder.example": {"TXT": ["v=DKIM1; k=rsa; p="]},
}


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONE) as srv:
        yield srv


@pytest.fixture
def txt(server: DnsServer) -> TxtCache:
    return TxtCache(make_resolver(server.nameservers))


def sealed(
    raw: bytes, hop: str = "mx.forwarder.example", domain: str = "forwarder.example",
    *, selector: str = "sel", key: str = KEY, chain: str = "none",
) -> bytes:
    """`raw` as a forwarder passes it on: its Authentication-Results (with what it found of the
    chain so far) and the ARC set dkimpy seals over them."""
    results = f"Authentication-Results: {hop}; spf=pass smtp.mailfrom=signer.example; arc={chain}\r\n"
    raw = results.encode() + raw
    arc_set = dkim.arc_sign(raw, selector.encode(), domain.encode(), key.encode(), hop.encode())
    return b"".join(arc_set) + raw


def arc_of(raw: bytes, txt: TxtCache) -> ArcResult:
    return check_auth(raw, NO_SPF, txt).arc


def test_a_message_without_arc_seal_has_no_chain(txt: TxtCache) -> None:
    assert arc_of(signed(message()), txt) == ArcResult("none", 0)


def test_one_forwarder_s_seal_passes(txt: TxtCache) -> None:
    assert arc_of(sealed(signed(message())), txt) == ArcResult("pass", 1)


def test_a_chain_of_two_hops_passes_with_two_instances(txt: TxtCache) -> None:
    two = sealed(sealed(message()), "mx.list.example", "list.example", chain="pass")
    assert arc_of(two, txt) == ArcResult("pass", 2)


def test_a_body_altered_after_the_last_seal_fails(txt: TxtCache) -> None:
    raw = sealed(message(body="Pay 10 EUR.\r\n")).replace(b"10 EUR", b"99 EUR")
    assert arc_of(raw, txt) == ArcResult("fail", 1)


def test_a_sealed_header_altered_afterwards_fails(txt: TxtCache) -> None:
    raw = sealed(sealed(message()), "mx.list.example", "list.example", chain="pass")
    assert arc_of(raw.replace(b"Subject: Order 42", b"Subject: Order 43"), txt) == ArcResult("fail", 2)


def test_a_second_seal_that_reports_a_broken_chain_fails(txt: TxtCache) -> None:
    two = sealed(sealed(message()), "mx.list.example", "list.example", chain="fail")
    assert arc_of(two, txt) == ArcResult("fail", 2)


@pytest.mark.parametrize(("selector", "key"), [("revoked", KEY), ("missing", KEY), ("sel", OTHER_KEY)])
def test_a_seal_whose_key_is_revoked_missing_or_another_fails(txt: TxtCache, selector: str, key: str) -> None:
    assert arc_of(sealed(message(), selector=selector, key=key), txt) == ArcResult("fail", 1)


def test_an_incomplete_set_fails(txt: TxtCache) -> None:
    raw = sealed(message())
    without_aar = b"\r\n".join(
        line for line in raw.split(b"\r\n") if not line.startswith(b"ARC-Authentication-Results")
    )
    assert arc_of(without_aar, txt) == ArcResult("fail", 1)


def test_dkim_and_dmarc_are_unchanged_by_the_chain(txt: TxtCache) -> None:
    plain = check_auth(signed(message()), NO_SPF, txt)
    forwarded = check_auth(sealed(signed(message())), NO_SPF, txt)
    assert (forwarded.dkim, forwarded.dmarc) == (plain.dkim, plain.dmarc)


def test_on_the_event_loop_an_uncached_seal_key_goes_to_a_thread(txt: TxtCache) -> None:
    raw = sealed(message())
    fields = [(b"arc-seal", b"i=1")]
    with pytest.raises(NotCached):
        arc_check.verify_chain(raw, fields, txt, Deadline.after(5.0), cached_only=True)
    assert arc_check.verify_chain(raw, fields, txt, Deadline.after(5.0)) == ArcResult("pass", 1)
    assert arc_check.verify_chain(raw, fields, txt, Deadline.after(5.0), cached_only=True).result == "pass"


def test_a_chain_longer_than_rfc_8617_allows_fails_unverified(txt: TxtCache) -> None:
    raw = sealed(message()).replace(b"i=1;", b"i=51;")
    assert arc_of(raw, txt) == ArcResult("fail", 51)
