"""A lean DKIM verifier (RFC 6376) for the common signature, beside dkimpy, which does the rest.

Why a second verifier: in bench/inbound.py a signed 5 KB message cost the edge about 0.2 ms of
CPU in dkimpy even with its costliest parts replaced (smtp_edge/dkimpy_fast.py), against the
0.1 ms that DKIM+DMARC at 0.4 of a bare server's throughput allows. What remained was dkimpy's
per-message Python: canonicalising every header field for each signature, the `b=` removal
regular expression (about 25 µs on a 2,048-bit signature), tag parsing and checking through
uncached `re` calls, and its logging calls. This module does the same steps directly with
`hashlib` and `cryptography` (measured in README's Benchmarks).

It answers only where it is sure to give dkimpy's answer, and says `None` otherwise, so
dkim_check.py asks dkimpy. Its case:

- the header block is CRLF only, every line a field (a name of printable ASCII and a colon) or
  a continuation of one, no mbox `From ` line, a blank line before the body, and the body is
  CRLF only too (dkimpy turns bare LFs into CRLFs first);
- `a=rsa-sha256` (or `ed25519-sha256`, which hashes the same way) with an RSA key of the
  record, `c=` of simple/relaxed, with or without `l=`; tag values as dkimpy validates them,
  with each check that would raise (a bad `i=`, a `t=` in the future, an expired `x=`, ...)
  left to dkimpy.

Anything that raises here also goes to dkimpy, which then gives its own answer (tests compare
the two on the corpus and on signed variants: tests/smtp_edge/test_dkim_lean.py).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import strip_trailing_lines

from . import dkimpy_fast
from .txt_cache import NotCached

_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
"""A field name and its colon, as dkimpy reads them (printable up to the first colon), without
the lines that start with a colon, which dkimpy reads as a field and header_fields skips."""
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B_TAG = re.compile(rb"[;\s]b\s*=")
_B_RUN = re.compile(rb"[\sA-Za-z0-9+/=]*")
_DOMAIN_SPECIALS = re.compile(rb"[\(\)<>\[\]:;@\\,]")
_DIGITS = re.compile(rb"\d+\Z")
_LENGTH = re.compile(rb"\d{1,76}\Z")
_H_SPLIT = re.compile(rb"\s*:\s*")
_MANDATORY = (b"v", b"a", b"b", b"bh", b"d", b"h", b"s")
_SLOP = 36000  # dkimpy's leeway for t= and x= (10 hours)
_MIN_KEY_BITS = 1024  # dkimpy's minkey
_SHA256_SIZE = 19 + 32  # the DER prefix and the digest, as in dkimpy_fast
_PKCS1 = padding.PKCS1v15()
_PREHASHED = Prehashed(hashes.SHA256())


class KeySource(Protocol):
    """dkim_check.KeyProbe: the key of `<s>._domainkey.<d>` as dkimpy keeps it, or None."""

    outcome: str

    def key(self, name: bytes) -> tuple[Any, int, bytes, bool] | None: ...


@dataclass
class LeanMessage:
    raw: bytes
    body_start: int
    headers: list[tuple[bytes, bytes]]  # (name, value with its CRLFs), as dkim.rfc822_parse
    names: list[bytes]  # the fields' names in lower case
    signatures: list[int]  # where the DKIM-Signature fields are
    tags: dict[int, dict[bytes, bytes]] = field(default_factory=dict)  # of signatures read
    _bodies: dict[bytes, bytes] = field(default_factory=dict)  # canonical body per algorithm


def read(raw: bytes) -> LeanMessage | None:
    """The header block as dkimpy reads it, or None when it is outside this module's case.
    The body is not touched here (an unsigned 25 MB message costs no copy and no scan)."""
    end = raw.find(b"\r\n\r\n")
    if end <= 0:
        return None
    block = raw[:end]
    if block.count(b"\n") != block.count(b"\r\n"):
        return None
    headers: list[tuple[bytes, bytes]] = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not headers:
                return None  # dkimpy fails on it: dkim_check.py reports neutral
            name, value = headers[-1]
            headers[-1] = (name, value + line + b"\r\n")
            continue
        match = _FIELD_NAME.match(line)
        if match is None:
            return None  # an mbox From line, or a line dkimpy refuses
        headers.append((line[: match.end() - 1], line[match.end() :] + b"\r\n"))
    names = [name.lower() for name, _ in headers]
    signatures = [i for i, name in enumerate(names) if name == b"dkim-signature"]
    return LeanMessage(raw, end + 4, headers, names, signatures)


def unfolded(message: LeanMessage) -> list[tuple[bytes, bytes]]:
    """dkim_check.header_fields of the same message (lower-case names, unfolded values), from
    the fields already read, so the header block is split once."""
    fields = []
    for name, (_, value) in zip(message.names, message.headers, strict=True):
        text = value[:-2]  # without its final CRLF
        if b"\r\n" in text:  # folded: each line stripped, joined by one space
            fields.append((name, b" ".join([line.strip() for line in text.split(b"\r\n")])))
        else:
            fields.append((name, text.strip()))
    return fields


def tags(value: bytes) -> dict[bytes, bytes] | None:
    """dkim.util.parse_tag_value, or None where it would raise."""
    tags: dict[bytes, bytes] = {}
    specs = value.strip().split(b";")
    if not specs[-1]:
        specs.pop()
    for spec in specs:
        key, equals, tag_value = spec.partition(b"=")
        key = key.strip()
        if not equals or not key[:1].isalpha() or key in tags:
            return None
        tags[key] = tag_value.strip()
    return tags


def _valid(sig: dict[bytes, bytes], now: int) -> bool:
    """dkim.validate_signature_fields finds nothing wrong (False: leave it to dkimpy)."""
    if any(name not in sig for name in _MANDATORY):
        return False
    if sig[b"a"] not in (b"rsa-sha256", b"ed25519-sha256") or sig[b"v"] != b"1":
        return False
    # dkimpy: b= matches [\s0-9A-Za-z+/]+[\s=]*$, and b= and bh= are whole base64 quanta.
    b = _unspaced(sig[b"b"])
    digits = b.rstrip(b"=")
    if not digits or digits.translate(None, _B64_ALPHABET) or len(b) % 4:
        return False
    if len(_unspaced(sig[b"bh"])) % 4:
        return False
    domain = sig[b"d"]
    if not domain.isascii() or _DOMAIN_SPECIALS.search(domain):
        return False
    if b"i" in sig:
        identity = sig[b"i"].lower()
        if not identity.endswith(domain.lower()) or len(identity) <= len(domain):
            return False
        if identity[-len(domain) - 1] not in (64, 46):  # "@" or "."
            return False
    if b"l" in sig and _LENGTH.match(sig[b"l"]) is None:
        return False
    if b"q" in sig and sig[b"q"] != b"dns/txt":
        return False
    if b"cv" in sig:
        return False  # an ARC tag: dkimpy's own rules
    signed_at = int(sig[b"t"]) if b"t" in sig and _DIGITS.match(sig[b"t"]) else None
    if b"t" in sig and (signed_at is None or signed_at > now + _SLOP):
        return False
    if b"x" in sig:
        if _DIGITS.match(sig[b"x"]) is None:
            return False
        expires = int(sig[b"x"])
        if expires < now - _SLOP or (signed_at and expires < signed_at):
            return False
    return True


def _unspaced(value: bytes) -> bytes:
    """re.sub(rb"\\s+", b"", value): bytes.split() splits at the same six ASCII blanks."""
    return b"".join(value.split())


def _without_b(value: bytes) -> bytes | None:
    """dkim.RE_BTAG.sub(rb"\\1", value): the signature field without the b= tag's value, and
    without the line end after it when it is last. RE_BTAG's folding-whitespace pattern is
    `\\s*` in effect, so it removes the longest run of blanks and base64 characters after
    `b=` that ends in a base64 character. None when `b=` occurs more than once (dkimpy's
    expression would remove each): not this module's case."""
    tag = _B_TAG.search(value)
    if tag is None or _B_TAG.search(value, tag.end()) is not None:
        return None
    run = _B_RUN.match(value, tag.end())
    assert run is not None  # the pattern matches the empty string
    end = tag.end() + len(run.group().rstrip())
    rest = value[end:]
    if rest in (b"\r\n", b"\n"):
        rest = b""
    return value[: tag.end()] + rest


def _canonical_body(message: LeanMessage, algorithm: bytes) -> bytes | None:
    """None for a body with a bare LF (dkimpy makes it a CRLF first: not this module's case)."""
    body = message._bodies.get(algorithm)
    if body is None:
        raw, start = message.raw, message.body_start
        if raw.count(b"\n", start) != raw.count(b"\r\n", start):
            return None
        canonicalize = dkimpy_fast.relaxed_body if algorithm == b"relaxed" else strip_trailing_lines
        body = canonicalize(raw[start:])
        message._bodies[algorithm] = body
    return body


def verify(message: LeanMessage, index: int, keys: KeySource) -> str | None:
    """The result of the `index`-th signature (topmost 0), or None: ask dkimpy."""
    try:
        return _verify(message, index, keys)
    except NotCached:
        raise
    except Exception:
        return None


def _verify(message: LeanMessage, index: int, keys: KeySource) -> str | None:
    signature_field = message.headers[message.signatures[index]]
    sig = tags(signature_field[1])
    if sig is None:
        return None
    message.tags[index] = sig
    if not _valid(sig, int(time.time())):
        return None
    header_algorithm, _, body_algorithm = sig.get(b"c", b"simple/simple").partition(b"/")
    body_algorithm = body_algorithm or b"simple"
    if b"/" in body_algorithm or {header_algorithm, body_algorithm} - {b"simple", b"relaxed"}:
        return None
    include = [name.lower() for name in _H_SPLIT.split(sig[b"h"])]
    key = keys.key(sig[b"s"] + b"._domainkey." + sig[b"d"])
    if key is None:
        return "temperror" if keys.outcome == "temporary" else "permerror"
    public, bits, ktag, tlsrpt = key
    if ktag != b"rsa" or tlsrpt:
        return None
    modulus, exponent = public["modulus"], public["publicExponent"]
    size = (modulus.bit_length() + 7) // 8
    if size < _SHA256_SIZE + 11:
        return None
    body = _canonical_body(message, body_algorithm)
    if body is None:
        return None
    if b"l" in sig:
        body = body[: int(sig[b"l"])]
    if hashlib.sha256(body).digest() != base64.b64decode(_unspaced(sig[b"bh"])):
        return "fail"
    if b"from" in include:
        include.append(b"from")  # dkimpy counts a second From field (its bug #644046)
    hasher = hashlib.sha256()
    selected = _select(message, include)
    unsigned = _without_b(signature_field[1])
    if unsigned is None:
        return None
    signature_field = (signature_field[0], unsigned)
    if header_algorithm == b"relaxed":
        selected = [_relaxed(name, value) for name, value in selected]
        signature_field = _relaxed(*signature_field)
    for name, field_value in selected:
        hasher.update(name + b":" + field_value)
    hasher.update(signature_field[0] + b":" + signature_field[1].rstrip())
    signature = base64.b64decode(_unspaced(sig[b"b"]))
    number = signature.lstrip(b"\0")
    if len(number) > size:
        return "fail"
    try:
        dkimpy_fast.rsa_public_key(modulus, exponent).verify(
            number.rjust(size, b"\0"), hasher.digest(), _PKCS1, _PREHASHED
        )
    except InvalidSignature:
        return "fail"
    return "pass" if bits >= _MIN_KEY_BITS else "permerror"


def _relaxed(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """Relaxed header canonicalisation (RFC 6376 3.4.2) of a CRLF-only field, as
    dkimpy_fast.relaxed_headers without its check for bare LFs, which `read` has made."""
    value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:
        value = dkimpy_fast.WHITESPACE.sub(b" ", value)
    return name.lower(), value.strip() + b"\r\n"


def _select(message: LeanMessage, include: list[bytes]) -> list[tuple[bytes, bytes]]:
    """dkim.select_headers: each name in `h=` takes the next field of that name upwards."""
    headers, names = message.headers, message.names
    selected = []
    last: dict[bytes, int] = {}
    for name in include:
        i = last.get(name, len(headers))
        while i > 0:
            i -= 1
            if names[i] == name:
                selected.append(headers[i])
                break
        last[name] = i
    return selected


def domain_and_selector(message: LeanMessage, index: int) -> tuple[bytes, bytes] | None:
    """The d= and s= the verifier read of the `index`-th signature, when they are the values
    dkim_check reads from the unfolded field: no blanks inside them or inside a tag name, which
    unfolding would change."""
    sig = message.tags.get(index)
    if sig is None or any(len(name.split()) > 1 for name in sig):
        return None
    domain, selector = sig.get(b"d", b""), sig.get(b"s", b"")
    if len(domain.split()) > 1 or len(selector.split()) > 1:
        return None
    return domain, selector
