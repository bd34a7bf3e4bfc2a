"""smtp_edge/dkim_lean.py answers as dkimpy does: on messages dkimpy signs (passing, altered,
l=, revoked and missing keys, several signatures, folded headers, odd whitespace), on the
corpus (the flanker DKIM vectors signed here, and real signed mail), and piece by piece on
generated inputs. Where it declines (None), dkimpy decides, so the edge's answer is dkimpy's."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from dkim.util import InvalidTagValueList, parse_tag_value

from provider.dns import make_resolver
from smtp_edge import dkim_check, dkim_lean
from smtp_edge.auth_results import check_auth
from smtp_edge.txt_cache import Deadline, TxtCache
from tests.dnsserver import DnsServer
from tests.inbound.samples import CORPUS

from .test_dkim_dmarc import KEY, NO_SPF, OTHER_KEY, ZONE, message

VECTORS = CORPUS / "flanker" / "dkim"


@pytest.fixture(scope="module")
def txt() -> Iterator[TxtCache]:
    zone = {**ZONE, "sel._domainkey.example.net": ZONE["sel._domainkey.signer.example"]}
    with DnsServer(zone) as server:
        yield TxtCache(make_resolver(server.nameservers))


def _probe(txt: TxtCache) -> dkim_check.KeyProbe:
    return dkim_check.KeyProbe(txt, Deadline.after(5.0))


def dkimpy_results(raw: bytes, txt: TxtCache) -> list[str]:
    """What dkimpy alone answers for each signature (the edge's path before dkim_lean)."""
    count = len(
        [v for n, v in dkim_check.header_fields(raw) if n == b"dkim-signature"][: dkim_check.MAX_SIGNATURES]
    )
    parsed = dkim_check._dkimpy_message(raw)
    if parsed is None:
        return ["neutral"] * count
    return [dkim_check._verify(parsed, index, _probe(txt)) for index in range(count)]


def lean_results(raw: bytes, txt: TxtCache) -> list[str | None]:
    lean = dkim_lean.read(raw)
    if lean is None:
        return []
    count = min(len(lean.signatures), dkim_check.MAX_SIGNATURES)
    return [dkim_lean.verify(lean, index, _probe(txt)) for index in range(count)]


def assert_same_as_dkimpy(raw: bytes, txt: TxtCache, *, lean_decides: bool = True) -> list[str]:
    """The lean verifier agrees with dkimpy wherever it answers (and answers every signature
    when `lean_decides`); the edge's check gives dkimpy's results."""
    expected = dkimpy_results(raw, txt)
    lean = lean_results(raw, txt)
    for mine, theirs in zip(lean, expected, strict=False):
        assert mine is None or mine == theirs
    if lean_decides:
        assert len(lean) == len(expected) and None not in lean
    assert [d.result for d in check_auth(raw, NO_SPF, txt).dkim] == expected
    return expected


def sign(raw: bytes, **options: object) -> bytes:
    """dkimpy's signature of `raw` (From, To, Subject signed) in front of it."""
    settings: dict[str, object] = {
        "canonicalize": (b"relaxed", b"relaxed"),
        "include_headers": [b"from", b"to", b"subject"],
        **options,
    }
    selector = settings.pop("selector", b"sel")
    domain = settings.pop("domain", b"signer.example")
    key = settings.pop("key", KEY)
    assert isinstance(key, str)
    return dkim.sign(raw, selector, domain, key.encode(), **settings) + raw  # type: ignore[arg-type]


CANONICALIZATIONS = [
    (b"relaxed", b"relaxed"), (b"simple", b"simple"), (b"relaxed", b"simple"), (b"simple", b"relaxed")
]


@pytest.mark.parametrize("canonicalize", CANONICALIZATIONS, ids=lambda c: b"/".join(c).decode())
def test_a_signed_message_passes_as_in_dkimpy(txt: TxtCache, canonicalize: tuple[bytes, bytes]) -> None:
    assert assert_same_as_dkimpy(sign(message(), canonicalize=canonicalize), txt) == ["pass"]


@pytest.mark.parametrize("canonicalize", CANONICALIZATIONS, ids=lambda c: b"/".join(c).decode())
def test_an_altered_body_or_header_fails_as_in_dkimpy(
    txt: TxtCache, canonicalize: tuple[bytes, bytes]
) -> None:
    raw = sign(message(body="Pay 10 EUR.\r\n"), canonicalize=canonicalize)
    assert assert_same_as_dkimpy(raw.replace(b"10 EUR", b"99 EUR"), txt) == ["fail"]
    assert assert_same_as_dkimpy(raw.replace(b"Order 42", b"Order 43"), txt) == ["fail"]
    assert assert_same_as_dkimpy(raw.replace(b"Subject: Order 42", b"Subject:  Order 42"), txt) == [
        "pass" if canonicalize[0] == b"relaxed" else "fail"
    ]


def test_a_length_tag_covers_only_that_much_of_the_body(txt: TxtCache) -> None:
    raw = sign(message(body="Signed part.\r\n"), length=True)
    assert assert_same_as_dkimpy(raw, txt) == ["pass"]
    assert assert_same_as_dkimpy(raw + b"Added by a list.\r\n", txt) == ["pass"]
    assert assert_same_as_dkimpy(raw.replace(b"Signed part", b"Signed PART"), txt) == ["fail"]


@pytest.mark.parametrize(
    ("selector", "key", "result"),
    [(b"revoked", KEY, "permerror"), (b"missing", KEY, "permerror"), (b"rotated", KEY, "fail"),
     (b"garbled", KEY, "permerror"), (b"rotated", OTHER_KEY, "pass")],
)
def test_keys_revoked_missing_or_other_give_dkimpys_results(
    txt: TxtCache, selector: bytes, key: str, result: str
) -> None:
    assert assert_same_as_dkimpy(sign(message(), selector=selector, key=key), txt) == [result]


def test_several_signatures_each_get_dkimpys_result(txt: TxtCache) -> None:
    raw = sign(message(), domain=b"reject.example")
    raw = sign(raw, selector=b"revoked")
    raw = sign(raw, canonicalize=(b"simple", b"simple"))
    assert assert_same_as_dkimpy(raw, txt) == ["pass", "permerror", "pass"]
    tampered = raw.replace(b"Hello there.", b"Hello world.")
    assert assert_same_as_dkimpy(tampered, txt) == ["fail", "permerror", "fail"]


def test_past_the_signature_limit_the_topmost_get_dkimpys_results(txt: TxtCache) -> None:
    raw = message()
    for _ in range(dkim_check.MAX_SIGNATURES + 1):
        raw = sign(raw)
    assert assert_same_as_dkimpy(raw, txt) == ["pass"] * dkim_check.MAX_SIGNATURES


FOLDED_AND_ODD = [
    b"From: Ann\r\n <ann@signer.example>\r\nTo: box@cloudmailin.test,\r\n\tother@cloudmailin.test\r\n"
    b"Subject: a subject\r\n  folded \t twice\r\n over three lines\r\n\r\nbody\r\n",
    b"From:ann@signer.example\r\nTo:  box@cloudmailin.test  \r\nSubject:\tTabs\tand  spaces \r\n\r\n"
    b"line with trailing blanks   \r\n\ttabbed\t\tline\r\n\r\n\r\n\r\n",
    b"From: ann@signer.example\r\nSubject: empty body\r\nX-Blank: a\r\n \r\n\t\r\n\r\n",
    b"From: ann@signer.example\r\nSubject: only blank lines\r\n\r\n\r\n\r\n",
    b"From: ann@signer.example\r\nFrom: second@other.example\r\nSubject: two From fields\r\n\r\nx\r\n",
    b"From: ann@signer.example\r\nSubject: no final line end\r\n\r\nlast line",
    b"From: ann@signer.example\r\nX-Odd:value:with:colons\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\n"
    b"caf\xc3\xa9 \xe2\x82\xac 8-bit\r\n.\r\n..dots\r\n",
]


@pytest.mark.parametrize("raw", FOLDED_AND_ODD, ids=range(len(FOLDED_AND_ODD)))
@pytest.mark.parametrize("canonicalize", CANONICALIZATIONS, ids=lambda c: b"/".join(c).decode())
def test_folded_headers_and_odd_whitespace_give_dkimpys_results(
    txt: TxtCache, raw: bytes, canonicalize: tuple[bytes, bytes]
) -> None:
    assert_same_as_dkimpy(sign(raw, canonicalize=canonicalize), txt)
    refolded = sign(raw, canonicalize=canonicalize).replace(b"Subject: ", b"Subject:\r\n  ")
    assert_same_as_dkimpy(refolded, txt)


def test_a_lower_case_field_name_counts_under_simple_only(txt: TxtCache) -> None:
    for canonicalize, result in ((b"relaxed", "pass"), (b"simple", "fail")):
        raw = sign(message(), canonicalize=(canonicalize, canonicalize))
        renamed = raw.replace(b"DKIM-Signature:", b"dkim-signature:", 1)
        assert assert_same_as_dkimpy(renamed, txt) == [result]


def test_what_the_lean_verifier_leaves_to_dkimpy_still_gets_dkimpys_result(txt: TxtCache) -> None:
    sha1 = sign(message(), signature_algorithm=b"rsa-sha1")
    bare_lf = sign(message()).replace(b"Hello there.\r\n", b"Hello\nthere.\r\n")
    mbox = b"From someone Mon Jan  1 00:00:00 2024\r\n" + sign(message())
    future = sign(message()).replace(b"t=", b"t=9", 1)
    for raw in (sha1, bare_lf, mbox, future):
        assert_same_as_dkimpy(raw, txt, lean_decides=False)
    assert lean_results(sha1, txt) == [None]


# --- the corpus -------------------------------------------------------------------------------


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def vectors() -> list[Path]:
    return sorted(p for p in VECTORS.glob("email.*") if p.read_bytes().strip()) if VECTORS.is_dir() else []


@pytest.mark.parametrize("canonicalize", CANONICALIZATIONS, ids=lambda c: b"/".join(c).decode())
def test_the_flanker_vectors_signed_and_altered_give_dkimpys_results(
    txt: TxtCache, canonicalize: tuple[bytes, bytes]
) -> None:
    for path in vectors():
        raw = crlf(path.read_bytes())
        if dkim_lean.read(raw) is None:
            continue
        signature = dkim.sign(raw, b"sel", b"example.net", KEY.encode(), canonicalize=canonicalize,
                              include_headers=[b"from"])
        assert assert_same_as_dkimpy(signature + raw, txt) == ["pass"]
        assert_same_as_dkimpy(signature + raw.replace(b"joe@example.net", b"eve@example.net", 1), txt)
        canonical = VECTORS / f"{canonicalize[1].decode()}.expected.{path.suffix[1:]}"
        assert_same_as_dkimpy(signature + crlf(canonical.read_bytes()), txt)


def corpus_messages() -> list[bytes]:
    if not CORPUS.is_dir():
        return []
    return [p.read_bytes() for p in sorted(CORPUS.rglob("*")) if p.is_file() and p.parent != VECTORS]


def test_real_signed_corpus_messages_give_dkimpys_results(txt: TxtCache) -> None:
    signed_ones = 0
    for raw in corpus_messages():
        for variant in (raw, crlf(raw)):
            if any(n == b"dkim-signature" for n, _ in dkim_check.header_fields(variant)):
                signed_ones += 1
                assert_same_as_dkimpy(variant, txt, lean_decides=False)
    assert signed_ones >= 15 or not CORPUS.is_dir()


def test_the_header_fields_read_once_are_header_fields_on_the_corpus() -> None:
    read = 0
    for raw in corpus_messages() + [crlf(m) for m in corpus_messages()] + FOLDED_AND_ODD:
        lean = dkim_lean.read(raw)
        if lean is not None:
            read += 1
            assert dkim_lean.unfolded(lean) == dkim_check.header_fields(raw)
            assert [[n, v] for n, v in lean.headers] == dkim.rfc822_parse(raw)[0]
    assert read > 50 or not CORPUS.is_dir()


def test_the_corpus_is_there_for_these_comparisons() -> None:
    if CORPUS.is_dir():
        assert len(vectors()) == 20 and len(corpus_messages()) > 100


# --- piece by piece ------------------------------------------------------------------------------

TAG_PIECES = [b"b", b"bh", b"=", b";", b" ", b"\t", b"\r\n ", b"\r\n", b"abc", b"+/", b"==", b"a=1", b"x"]


@pytest.mark.parametrize("seed", range(400))
def test_removing_b_is_dkimpys_expression_on_generated_fields(seed: int) -> None:
    rng = random.Random(seed)
    value = b"".join(rng.choice(TAG_PIECES) for _ in range(rng.randrange(1, 25)))
    removed = dkim_lean._without_b(value)
    assert removed is None or removed == dkim.RE_BTAG.sub(rb"\1", value)


@pytest.mark.parametrize("seed", range(400))
def test_tag_lists_read_as_dkimpy_reads_them(seed: int) -> None:
    rng = random.Random(seed)
    value = b"".join(rng.choice(TAG_PIECES) for _ in range(rng.randrange(0, 25)))
    try:
        expected: dict[bytes, bytes] | None = parse_tag_value(value)
    except InvalidTagValueList:
        expected = None
    assert dkim_lean.tags(value) == expected


def test_signature_tags_are_checked_as_dkimpy_checks_them() -> None:
    """Every tag set `_valid` accepts is one dkimpy's validation accepts (the reverse is left
    to dkimpy, which then decides)."""
    rng = random.Random(7)
    now = int(time.time())
    choices = {
        b"v": [b"1", b"2"], b"a": [b"rsa-sha256", b"rsa-sha1", b"ed25519-sha256", b"x"],
        b"b": [b"abcd", b"ab cd", b"abc=", b"ab=c", b"", b"  ", b"a!cd"], b"bh": [b"abcd", b"abc", b"!!!!"],
        b"d": [b"example.com", b"exa;mple", "ex\u00e4mple".encode()], b"s": [b"sel"], b"h": [b"from"],
        b"i": [b"@example.com", b"a@sub.example.com", b"@other.com", b"example.com", b"xexample.com"],
        b"l": [b"10", b"", b"x"], b"q": [b"dns/txt", b"dns"],
        b"t": [str(now).encode(), str(now + 99999).encode(), b"x"],
        b"x": [str(now + 60).encode(), str(now - 99999).encode(), b"1"],
    }
    optional = {b"i", b"l", b"q", b"t", b"x"}
    for _ in range(3000):
        sig = {k: rng.choice(v) for k, v in choices.items() if k not in optional or rng.random() < 0.5}
        if dkim_lean._valid(sig, now):
            dkim.validate_signature_fields(sig)  # raises if dkimpy disagrees


def test_domains_and_selectors_are_those_of_the_unfolded_fields(txt: TxtCache) -> None:
    raw = sign(message(), domain=b"Signer.Example")
    folded = raw.replace(b"d=Signer.Example;", b"d=Signer.Example;\r\n\t", 1)
    for variant in (raw, folded, raw.replace(b"s=sel;", b"s=sel\r\n ;", 1)):
        fields = dkim_check.header_fields(variant)
        expected = [dkim_check._tags(v) for n, v in fields if n == b"dkim-signature"]
        assert [(d.domain, d.selector) for d in check_auth(variant, NO_SPF, txt).dkim] == expected
    assert expected == [("signer.example", "sel")]
