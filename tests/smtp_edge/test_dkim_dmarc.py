"""DKIM and DMARC verdicts from real signatures (dkimpy, real RSA keys) and real records served
by the DNS server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dkim
import pytest

from provider.dns import make_resolver
from provider.inbound.envelope import DkimResult, DmarcResult, SpfResult
from provider.outbound.dkim import dns_record, new_key_pair
from smtp_edge.auth_results import AuthResults, check_auth
from smtp_edge.txt_cache import Deadline, TxtCache, TxtTemporaryError
from tests.dnsserver import TTL, DnsServer

KEY, PUBLIC = new_key_pair()
OTHER_KEY, OTHER_PUBLIC = new_key_pair()

DMARC_DOMAINS = {
    "none.example": "v=DMARC1; p=none",
    "quarantine.example": "v=DMARC1; p=quarantine; rua=mailto:r@quarantine.example",
    "reject.example": "v=DMARC1; p=reject",
    "parent.example": "v=DMARC1; p=quarantine; sp=reject",
    "strict.example": "v=DMARC1; p=reject; adkim=s; aspf=s",
    "bad.example": "v=DMARC1; p=bogus",
    "two.example": "v=DMARC1; p=reject",
}
ZONE: dict[str, dict[str, list[str]]] = {
    **{f"_dmarc.{d}": {"TXT": [record]} for d, record in DMARC_DOMAINS.items()},
    "_dmarc.two.example": {"TXT": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]},
    "_dmarc.unrelated.example": {"TXT": ["google-site-verification=abc"]},
    **{
        f"sel._domainkey.{d}": {"TXT": [dns_record(PUBLIC)]}
        for d in [*DMARC_DOMAINS, "signer.example", "mail.strict.example", "news.parent.example"]
    },
    "rotated._domainkey.signer.example": {"TXT": [dns_record(OTHER_PUBLIC)]},
    "revoked._domainkey.signer.example": {"TXT": ["v=DKIM1; k=rsa; p="]},
    "garbled._domainkey.signer.example": {"TXT": ["v=DKIM1; k=rsa; p=bm90IGEga2V5"]},
}
SERVFAIL = {"broken._domainkey.signer.example", "_dmarc.tempfail.example"}
SLOW = {"slow._domainkey.signer.example": 5.0}


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONE, servfail=SERVFAIL, delays=SLOW) as srv:
        yield srv


@pytest.fixture
def txt(server: DnsServer) -> TxtCache:
    return TxtCache(make_resolver(server.nameservers))


def message(from_header: str = "Ann <ann@signer.example>", body: str = "Hello there.\r\n") -> bytes:
    return (
        f"From: {from_header}\r\nTo: box@cloudmailin.test\r\nSubject: Order 42\r\n"
        f"Message-ID: <42@signer.example>\r\n\r\n{body}"
    ).encode()


def signed(
    raw: bytes,
    domain: str = "signer.example",
    selector: str = "sel",
    *,
    key: str = KEY,
    length: bool = False,
    canonicalize: tuple[bytes, bytes] = (b"relaxed", b"relaxed"),
) -> bytes:
    header = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        key.encode(),
        canonicalize=canonicalize,
        include_headers=[b"from", b"to", b"subject", b"message-id"],
        length=length,
    )
    return header + raw


NO_SPF = SpfResult("none", "client.example")


def verdicts(raw: bytes, txt: TxtCache, spf: SpfResult = NO_SPF, **kwargs: float) -> AuthResults:
    return check_auth(raw, spf, txt, **kwargs)


def dkim_of(raw: bytes, txt: TxtCache) -> list[str]:
    return [d.result for d in verdicts(raw, txt).dkim]


# --- DKIM --------------------------------------------------------------------------------------


def test_a_valid_signature_passes_with_its_domain_and_selector(txt: TxtCache) -> None:
    results = verdicts(signed(message()), txt)
    assert results.dkim == (DkimResult("signer.example", "sel", "pass"),)
    assert results.dkim_summary == "pass"


@pytest.mark.parametrize("canonicalize", [(b"simple", b"simple"), (b"relaxed", b"simple")])
def test_other_canonicalizations_pass_too(txt: TxtCache, canonicalize: tuple[bytes, bytes]) -> None:
    assert dkim_of(signed(message(), canonicalize=canonicalize), txt) == ["pass"]


def test_a_body_altered_after_signing_fails(txt: TxtCache) -> None:
    raw = signed(message(body="Pay 10 EUR.\r\n")).replace(b"10 EUR", b"99 EUR")
    assert dkim_of(raw, txt) == ["fail"]


def test_a_signed_header_altered_after_signing_fails(txt: TxtCache) -> None:
    raw = signed(message()).replace(b"Subject: Order 42", b"Subject: Order 43")
    assert dkim_of(raw, txt) == ["fail"]


def test_relaxed_canonicalization_tolerates_refolded_whitespace(txt: TxtCache) -> None:
    raw = signed(message(body="Hello  there.\r\n")).replace(b"Hello  there.", b"Hello there.  ")
    assert dkim_of(raw, txt) == ["pass"]


def test_a_signature_checked_against_another_key_fails(txt: TxtCache) -> None:
    raw = signed(message(), selector="rotated")  # signed with KEY, OTHER_KEY published
    assert dkim_of(raw, txt) == ["fail"]


def test_a_revoked_key_is_a_permerror(txt: TxtCache) -> None:
    assert dkim_of(signed(message(), selector="revoked"), txt) == ["permerror"]


def test_an_unparsable_key_record_is_a_permerror(txt: TxtCache) -> None:
    assert dkim_of(signed(message(), selector="garbled"), txt) == ["permerror"]


def test_a_selector_without_a_key_is_a_permerror(txt: TxtCache) -> None:
    results = verdicts(signed(message(), selector="nosuch"), txt)
    assert results.dkim == (DkimResult("signer.example", "nosuch", "permerror"),)


def test_a_key_server_failing_is_a_temperror(txt: TxtCache) -> None:
    assert dkim_of(signed(message(), selector="broken"), txt) == ["temperror"]


def test_the_l_tag_covers_only_the_signed_length_of_the_body(txt: TxtCache) -> None:
    raw = signed(message(body="Signed part.\r\n"), length=True)
    assert dkim_of(raw + b"Added by a mailing list.\r\n", txt) == ["pass"]
    assert dkim_of(raw.replace(b"Signed part.", b"Signed PART."), txt) == ["fail"]


def test_an_l_tag_longer_than_the_body_fails(txt: TxtCache) -> None:
    raw = signed(message(body="Signed part.\r\nAnd more.\r\n"), length=True)
    assert dkim_of(raw.replace(b"And more.\r\n", b""), txt) == ["fail"]


def test_a_malformed_signature_is_neutral_and_others_are_still_verified(txt: TxtCache) -> None:
    raw = b"DKIM-Signature: v=1; d=signer.example; s=sel; garbage\r\n" + signed(message())
    results = verdicts(raw, txt)
    assert [d.result for d in results.dkim] == ["neutral", "pass"]
    assert results.dkim_summary == "pass"


def test_every_signature_is_reported_topmost_first(txt: TxtCache) -> None:
    raw = signed(signed(message(), selector="revoked"), domain="reject.example")
    assert verdicts(raw, txt).dkim == (
        DkimResult("reject.example", "sel", "pass"),
        DkimResult("signer.example", "revoked", "permerror"),
    )


def test_an_unsigned_message_has_no_dkim_results(txt: TxtCache) -> None:
    results = verdicts(message(), txt)
    assert results.dkim == ()
    assert results.dkim_summary == "none"


def test_a_slow_key_server_costs_at_most_the_time_limit(txt: TxtCache) -> None:
    results = verdicts(signed(message(), selector="slow"), txt, time_limit=0.5)
    assert [d.result for d in results.dkim] == ["temperror"]
    # The key server answers after 5 s: a `temperror` is the check giving up at its limit.
    assert results.dmarc.result == "temperror"  # no DNS time left for the policy either


# --- Caching ------------------------------------------------------------------------------------


def test_key_and_policy_records_are_asked_once_while_their_ttl_lasts(
    txt: TxtCache, server: DnsServer
) -> None:
    raw = signed(message(from_header="a@reject.example"), domain="reject.example")
    before = len(server.queries)
    first = verdicts(raw, txt)
    asked = len(server.queries) - before
    assert verdicts(raw, txt) == first
    assert asked == 2  # the key and _dmarc.reject.example
    assert len(server.queries) - before == asked


def test_a_temporary_failure_is_never_cached(txt: TxtCache, server: DnsServer) -> None:
    raw = signed(message(), selector="broken")
    verdicts(raw, txt)
    before = len(server.queries)
    assert dkim_of(raw, txt) == ["temperror"]
    assert any(q[0] == "broken._domainkey.signer.example" for q in server.queries[before:])


def test_a_cached_record_is_asked_again_after_its_ttl(server: DnsServer) -> None:
    now = [1_000_000.0]
    txt = TxtCache(make_resolver(server.nameservers), clock=lambda: now[0])
    name = "_dmarc.reject.example"
    deadline = Deadline.after(5)
    assert txt.lookup(name, deadline) == [b"v=DMARC1; p=reject"]
    before = len(server.queries)
    txt.lookup(name, deadline)
    assert len(server.queries) == before
    now[0] += TTL + 1
    txt.lookup(name, deadline)
    assert len(server.queries) == before + 1


def test_a_lookup_after_the_deadline_is_temporary(txt: TxtCache) -> None:
    with pytest.raises(TxtTemporaryError):
        txt.lookup("_dmarc.none.example", Deadline(time.monotonic() - 1))


# --- DMARC --------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["none", "quarantine", "reject"])
def test_an_aligned_dkim_signature_passes_dmarc(txt: TxtCache, policy: str) -> None:
    domain = f"{policy}.example"
    raw = signed(message(from_header=f"Ann <ann@{domain}>"), domain=domain)
    assert verdicts(raw, txt).dmarc == DmarcResult("pass", domain, policy)


@pytest.mark.parametrize("policy", ["none", "quarantine", "reject"])
def test_a_signature_of_another_domain_fails_dmarc(txt: TxtCache, policy: str) -> None:
    domain = f"{policy}.example"
    raw = signed(message(from_header=f"Ann <ann@{domain}>"), domain="signer.example")
    results = verdicts(raw, txt)
    assert results.dkim_summary == "pass"
    assert results.dmarc == DmarcResult("fail", domain, policy)


def test_a_failing_signature_of_the_from_domain_fails_dmarc(txt: TxtCache) -> None:
    raw = signed(message(from_header="ann@reject.example"), domain="reject.example")
    raw = raw.replace(b"Hello", b"Howdy")
    assert verdicts(raw, txt).dmarc == DmarcResult("fail", "reject.example", "reject")


def test_an_aligned_spf_pass_passes_dmarc_without_a_signature(txt: TxtCache) -> None:
    raw = message(from_header="ann@reject.example")
    aligned = SpfResult("pass", "bounces.reject.example")
    assert verdicts(raw, txt, aligned).dmarc == DmarcResult("pass", "reject.example", "reject")
    unaligned = SpfResult("pass", "mailer.example")
    assert verdicts(raw, txt, unaligned).dmarc.result == "fail"
    softfail = SpfResult("softfail", "reject.example")
    assert verdicts(raw, txt, softfail).dmarc.result == "fail"


def test_a_subdomain_without_a_record_gets_the_organizational_domains_sp(txt: TxtCache) -> None:
    raw = message(from_header="ann@news.parent.example")
    assert verdicts(raw, txt).dmarc == DmarcResult("fail", "news.parent.example", "reject")
    aligned = signed(raw, domain="parent.example")  # relaxed: same Organizational Domain
    assert verdicts(aligned, txt).dmarc == DmarcResult("pass", "news.parent.example", "reject")


def test_strict_alignment_needs_the_exact_from_domain(txt: TxtCache) -> None:
    raw = message(from_header="ann@strict.example")
    assert verdicts(signed(raw, domain="mail.strict.example"), txt).dmarc.result == "fail"
    assert verdicts(signed(raw, domain="strict.example"), txt).dmarc.result == "pass"
    spf = SpfResult("pass", "mail.strict.example")
    assert verdicts(raw, txt, spf).dmarc.result == "fail"


def test_sibling_subdomains_under_a_public_suffix_do_not_align(txt: TxtCache) -> None:
    # herokuapp.com is a public suffix (private section): a.herokuapp.com is not b.herokuapp.com.
    from smtp_edge.dmarc_check import organizational_domain

    assert organizational_domain("x.a.herokuapp.com") == "a.herokuapp.com"
    assert organizational_domain("mail.shop.co.uk") == "shop.co.uk"
    assert organizational_domain("co.uk") == "co.uk"


def test_no_record_is_none(txt: TxtCache) -> None:
    assert verdicts(message(from_header="ann@unrelated.example"), txt).dmarc == DmarcResult(
        "none", "unrelated.example"
    )


def test_a_record_without_a_valid_policy_is_a_permerror(txt: TxtCache) -> None:
    assert verdicts(message(from_header="a@bad.example"), txt).dmarc == DmarcResult(
        "permerror", "bad.example"
    )


def test_two_records_count_as_none(txt: TxtCache) -> None:
    assert verdicts(message(from_header="a@two.example"), txt).dmarc.result == "none"


def test_a_policy_server_failing_is_a_temperror(txt: TxtCache) -> None:
    assert verdicts(message(from_header="a@tempfail.example"), txt).dmarc == DmarcResult(
        "temperror", "tempfail.example"
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"To: box@cloudmailin.test\r\nSubject: no From\r\n\r\nHi\r\n",
        b"From: a@reject.example\r\nFrom: b@reject.example\r\nSubject: two\r\n\r\nHi\r\n",
        b"From: a@reject.example, b@none.example\r\nSubject: two domains\r\n\r\nHi\r\n",
        b"From: undisclosed-recipients:;\r\nSubject: group\r\n\r\nHi\r\n",
    ],
    ids=["no-from", "two-from-fields", "two-domains", "no-address"],
)
def test_a_message_without_one_from_domain_is_a_permerror(txt: TxtCache, raw: bytes) -> None:
    assert verdicts(raw, txt).dmarc == DmarcResult("permerror", None)


def test_the_from_domain_is_matched_case_insensitively(txt: TxtCache) -> None:
    raw = signed(message(from_header="Ann <Ann@Reject.EXAMPLE>"), domain="reject.example")
    assert verdicts(raw, txt).dmarc == DmarcResult("pass", "reject.example", "reject")


def test_a_folded_from_field_is_read(txt: TxtCache) -> None:
    raw = signed(message(from_header='"Ann\r\n Example" <ann@reject.example>'), domain="reject.example")
    assert verdicts(raw, txt).dmarc == DmarcResult("pass", "reject.example", "reject")


# --- The OpenSSL check that replaces dkimpy's pure-Python RSA verification ---------------------


def test_openssl_rsa_verification_answers_as_dkimpys_own() -> None:
    import hashlib

    from dkim.crypto import RSASSA_PKCS1_v1_5_sign, parse_pem_private_key, parse_public_key

    from smtp_edge.dkimpy_fast import _dkimpy_rsa_verify, _rsa_verify

    private = parse_pem_private_key(KEY.encode())
    public = parse_public_key(__import__("base64").b64decode(PUBLIC))
    for n in range(40):
        digest = hashlib.sha256(f"message {n}".encode())
        signature = bytes(RSASSA_PKCS1_v1_5_sign(digest, private))
        flipped = signature[:-1] + bytes([signature[-1] ^ 1])
        other = hashlib.sha256(b"another message")
        for candidate, hashed in ((signature, digest), (flipped, digest), (signature, other),
                                  (signature.lstrip(b"\0"), digest), (b"\0" + signature, digest)):
            assert _rsa_verify(hashed, candidate, public) == _dkimpy_rsa_verify(hashed, candidate, public)
        assert _rsa_verify(digest, signature, public)


# --- Checks on the event loop from the cache alone ----------------------------------------------


def test_a_cache_only_check_never_asks_dns_and_says_so(txt: TxtCache, server: DnsServer) -> None:
    from smtp_edge.txt_cache import NotCached

    raw = signed(message(from_header="a@quarantine.example"), domain="quarantine.example")
    before = len(server.queries)
    with pytest.raises(NotCached):
        check_auth(raw, NO_SPF, txt, cached_only=True)
    assert len(server.queries) == before
    full = check_auth(raw, NO_SPF, txt)
    assert check_auth(raw, NO_SPF, txt, cached_only=True) == full
    assert full.dmarc == DmarcResult("pass", "quarantine.example", "quarantine")


def test_an_inline_check_with_a_cold_cache_goes_to_a_thread_and_gives_the_same_answer(
    server: DnsServer,
) -> None:
    import asyncio

    from smtp_edge.auth_results import AuthChecker

    checker = AuthChecker(make_resolver(server.nameservers))
    raw = signed(message(from_header="a@none.example"), domain="none.example")

    async def twice() -> tuple[AuthResults, AuthResults]:
        return (await checker.check(raw, NO_SPF, inline=True),
                await checker.check(raw, NO_SPF, inline=True))

    try:
        first, second = asyncio.run(twice())
    finally:
        checker.close()
    assert first == second
    assert first.dkim == (DkimResult("none.example", "sel", "pass"),)
    assert first.dmarc == DmarcResult("pass", "none.example", "none")
