"""The DKIM canonicalization vectors of the shared corpus (`flanker/dkim`): each message, signed
by dkimpy with a key the DNS server on 127.0.0.1 publishes, passes; and the vector's own
canonical form of it (whitespace refolded, trailing blank lines dropped: what the signature's
canonicalization promises to ignore) passes under the same signature."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest

from provider.dns import make_resolver
from provider.inbound.envelope import SpfResult
from provider.outbound.dkim import dns_record
from smtp_edge.auth_results import check_auth
from smtp_edge.dkim_check import MAX_SIGNATURES, header_fields
from smtp_edge.txt_cache import TxtCache
from tests.dnsserver import DnsServer
from tests.inbound.samples import CORPUS, corpus_part

from .test_dkim_dmarc import KEY, PUBLIC

VECTORS = corpus_part(CORPUS / "flanker" / "dkim")

SPF = SpfResult("none", "client.example")
# Vector 24's "relaxed" form keeps the body's trailing blank and whitespace-only lines, which
# RFC 6376 section 3.4.4 removes (its simple form is right): it is not a relaxed canonical form.
NOT_RFC_6376 = {("relaxed", "24")}


def vectors() -> list[Path]:
    return sorted(p for p in VECTORS.glob("email.*") if p.read_bytes().strip())


@pytest.fixture(scope="module")
def txt() -> Iterator[TxtCache]:
    with DnsServer({"sel._domainkey.example.net": {"TXT": [dns_record(PUBLIC)]}}) as server:
        yield TxtCache(make_resolver(server.nameservers))


def sign(raw: bytes, canonicalization: str) -> bytes:
    c = canonicalization.encode()
    return dkim.sign(
        raw, b"sel", b"example.net", KEY.encode(), canonicalize=(c, c), include_headers=[b"from"]
    )


def results(raw: bytes, txt: TxtCache) -> list[str]:
    return [d.result for d in check_auth(raw, SPF, txt).dkim]


@pytest.mark.parametrize("canonicalization", ["relaxed", "simple"])
@pytest.mark.parametrize("path", vectors(), ids=lambda p: p.name)
def test_a_signed_vector_passes_and_so_does_its_canonical_form(
    txt: TxtCache, path: Path, canonicalization: str
) -> None:
    raw = path.read_bytes()
    signature = sign(raw, canonicalization)
    assert results(signature + raw, txt) == ["pass"]
    number = path.suffix[1:]
    if (canonicalization, number) in NOT_RFC_6376:
        return
    canonical = (VECTORS / f"{canonicalization}.expected.{number}").read_bytes()
    assert results(signature + canonical, txt) == ["pass"]


@pytest.mark.parametrize("path", vectors(), ids=lambda p: p.name)
def test_a_signed_vector_with_a_changed_word_fails(txt: TxtCache, path: Path) -> None:
    raw = path.read_bytes()
    signature = sign(raw, "relaxed")
    altered = raw.replace(b"joe@example.net", b"eve@example.net", 1)
    assert results(signature + altered, txt) == ["fail"]


def test_the_empty_vector_has_no_signature_and_no_from_domain(txt: TxtCache) -> None:
    verdict = check_auth((VECTORS / "email.01").read_bytes(), SPF, txt)
    assert verdict.dkim == ()
    assert verdict.dmarc.result == "permerror"


def test_the_vectors_are_all_there() -> None:
    assert len(vectors()) == 20


def signed_corpus_messages() -> list[Path]:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.parent != VECTORS)
    return [p for p in files if any(n == b"dkim-signature" for n, _ in header_fields(p.read_bytes()))]


@pytest.mark.parametrize("path", signed_corpus_messages(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_real_signed_messages_report_each_signature_without_crashing(
    txt: TxtCache, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Real-world signatures (Gmail, Yahoo, Office 365...): their keys are not on 127.0.0.1, so
    each is a permerror (no key) or neutral (a signature dkimpy cannot evaluate, e.g. in a
    message that begins with a folded line); each is reported with its d= and s=."""
    raw = path.read_bytes()
    signatures = [v for n, v in header_fields(raw) if n == b"dkim-signature"]
    verdict = check_auth(raw, SPF, txt)
    assert len(verdict.dkim) == min(len(signatures), MAX_SIGNATURES)
    assert {d.result for d in verdict.dkim} <= {"permerror", "neutral"}
    assert all(d.domain and d.selector for d in verdict.dkim)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_the_corpus_holds_real_signed_messages() -> None:
    assert len(signed_corpus_messages()) >= 15
