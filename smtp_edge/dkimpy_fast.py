"""Faster equivalents of three dkimpy internals, for the edge's per-message DKIM verification.

dkimpy is correct but written for clarity: in bench/inbound.py its pure-Python RSA byte loops,
its relaxed body canonicalisation (two regular-expression passes that rewrite every single
space of the body) and its message split (every line of the body split and joined again) were
most of a signed message's cost (0.35 ms of CPU; 0.15 ms with these). Each replacement gives the same
answer as the function it replaces (tests/smtp_edge/test_dkimpy_fast.py compares them on
generated and corpus inputs) and falls back to it outside its fast case:

- `dkim.RSASSA_PKCS1_v1_5_verify` (the one function dkimpy's verifier calls for RSA) checks
  RSA-SHA256 through OpenSSL (`cryptography`); other hashes go to dkimpy's own. One difference:
  OpenSSL also refuses a signature that is not below the modulus, which dkimpy's arithmetic
  would reduce and accept.
- `Relaxed.canonicalize_body` and `canonicalize_headers` skip the whitespace passes when the
  body (a header value) has nothing they would change (no tab, no two spaces in a row, no
  space before a line end), and unfold a header value with a plain replace.
- `rfc822_parse` (used through `_Message.set_message` in dkim_check.py, not patched globally)
  splits a CRLF-only message at its blank line instead of splitting every body line.

Signing (provider/outbound/dkim.py) goes through the same canonicalisation and gets the same
bytes, only sooner.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import dkim
import dkim.crypto
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import Relaxed

_dkimpy_rsa_verify = dkim.RSASSA_PKCS1_v1_5_verify
_SHA256_DIGEST_INFO = 19 + 32  # RFC 8017 9.2: the DER prefix and the digest


@functools.lru_cache(maxsize=1024)
def rsa_public_key(modulus: int, exponent: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def _rsa_verify(hash: Any, signature: bytes, public_key: dict[str, int]) -> bool:
    """`dkim.crypto.RSASSA_PKCS1_v1_5_verify` (RFC 8017 RSASSA-PKCS1-v1_5) by OpenSSL."""
    if hash.name != "sha256":
        return bool(_dkimpy_rsa_verify(hash, signature, public_key))
    modulus, exponent = public_key["modulus"], public_key["publicExponent"]
    size = (modulus.bit_length() + 7) // 8
    if size < _SHA256_DIGEST_INFO + 11:
        raise dkim.crypto.DigestTooLargeError()  # as dkimpy: a key too small for the digest
    try:
        key = rsa_public_key(modulus, exponent)
    except ValueError:
        return bool(_dkimpy_rsa_verify(hash, signature, public_key))
    # dkimpy reads the signature as a number: leading zero bytes, missing or extra, change nothing.
    number = signature.lstrip(b"\0")
    if len(number) > size:
        return False
    try:
        key.verify(number.rjust(size, b"\0"), hash.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


dkim.RSASSA_PKCS1_v1_5_verify = _rsa_verify


_dkimpy_relaxed_body = Relaxed.canonicalize_body


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4, as `dkim.canonicalization.Relaxed.canonicalize_body`."""
    if b"\t" in body or b"  " in body or b" \r\n" in body:
        return bytes(_dkimpy_relaxed_body(body))
    # Nothing for the whitespace passes to change: what is left is dropping trailing empty lines.
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    canonical = body + b"\r\n" if end == len(body) else body[: end + 2]
    return b"" if canonical == b"\r\n" else canonical  # an empty body is empty


Relaxed.canonicalize_body = staticmethod(relaxed_body)

_dkimpy_relaxed_headers = Relaxed.canonicalize_headers
WHITESPACE = re.compile(rb"[\t ]+")


def relaxed_headers(headers: list[Any]) -> list[tuple[bytes, bytes]]:
    """RFC 6376 3.4.2, as `Relaxed.canonicalize_headers`: unfold (drop every CRLF), compress
    runs of whitespace to one space only where there are any, strip."""
    canonical = []
    for name, value in headers:
        if value.count(b"\n") != value.count(b"\r\n"):
            canonical += _dkimpy_relaxed_headers([(name, value)])  # a bare LF: dkimpy's rules
            continue
        unfolded = value.replace(b"\r\n", b"")
        if b"\t" in unfolded or b"  " in unfolded:
            unfolded = WHITESPACE.sub(b" ", unfolded)
        canonical.append((name.lower().rstrip(), unfolded.strip() + b"\r\n"))
    return canonical


Relaxed.canonicalize_headers = staticmethod(relaxed_headers)


def rfc822_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """`dkim.rfc822_parse`: (headers as [name, value + CRLF], body with CRLF line ends)."""
    end = message.find(b"\r\n\r\n")
    if end <= 0 or message.startswith(b"\r\n") or message.count(b"\n") != message.count(b"\r\n"):
        return dkim.rfc822_parse(message)
    headers, _ = dkim.rfc822_parse(message[: end + 4])
    return headers, message[end + 4 :]
