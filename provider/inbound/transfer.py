"""Content-Transfer-Encoding decoding that tolerates what real senders produce.

base64 goes through binascii (C speed, no intermediate copies: it reads a memoryview of the raw
message). Invalid base64 (stray characters, bad or missing padding, a truncated last quantum) is
decoded as far as it makes sense instead of being dropped. Quoted-printable uses binascii too,
which leaves malformed `=XY` sequences as they are. Unknown encodings (`x-uuencode`, typos) and
7bit/8bit/binary pass the bytes through unchanged.
"""

from __future__ import annotations

import binascii

_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_NOT_B64 = bytes(c for c in range(256) if c not in _B64_ALPHABET)


def b64decode_lenient(data: bytes | memoryview) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        clean = bytes(data).translate(None, _NOT_B64)
        if len(clean) % 4 == 1:
            clean = clean[:-1]
        try:
            return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
        except binascii.Error:
            return b""


def decode_body(data: memoryview, encoding: str) -> bytes:
    """Decode data (a view into the raw message) for the part's Content-Transfer-Encoding."""
    if encoding == "base64":
        return b64decode_lenient(data)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    return bytes(data)
