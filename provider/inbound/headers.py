"""Header sections: splitting them into fields, unfolding and RFC 2047 decoding.

Works on the raw bytes with offsets so a part's body is never copied just to find its headers.
A field runs to the first line break not followed by a space or tab (regex search, so a 1 MB
header line costs one scan). Unfolding deletes the line breaks only (CRLF, or LF in messages that
arrived with bare LFs); the whitespace that followed them stays, as the spec says.
"""

from __future__ import annotations

import binascii
import re

from .charsets import clean_text, decode_text, guess_text
from .transfer import b64decode_lenient

_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_FIELD_END = re.compile(rb"\n(?![ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,80})\?([bBqQ])\?([^?]*)\?=")
_FOLD_WS = " \t\r\n"


class TooManyHeaders(Exception):
    """Raised by split_fields when a section has more fields than allowed."""


def split_fields(raw: bytes, start: int, end: int, max_fields: int) -> tuple[list[tuple[bytes, bytes]], int]:
    """Fields of the header section at raw[start:end] as (name, folded raw value), and body start.

    The section ends at an empty line, or at the first line that is neither a field nor a
    continuation (no blank line before the body: that line starts the body, as stdlib does).
    A leading mbox "From " line and whitespace lines before the first field are skipped.
    """
    fields: list[tuple[bytes, bytes]] = []
    pos = start
    while pos < end:
        first = raw[pos]
        if first == 0x0A:
            return fields, pos + 1
        if first == 0x0D and raw.startswith(b"\r\n", pos, end):
            return fields, pos + 2
        name = _FIELD_NAME.match(raw, pos, end)
        if (
            name is None
            and first not in (0x20, 0x09)
            and not (pos == start and raw.startswith(b"From ", pos, end))
        ):
            return fields, pos
        brk = _FIELD_END.search(raw, pos, end)
        line_end = brk.start() if brk else end
        nxt = line_end + 1 if brk else end
        if name is not None:
            if len(fields) >= max_fields:
                raise TooManyHeaders
            fields.append((raw[pos : name.end() - 1].rstrip(b" \t"), raw[name.end() : line_end]))
        pos = nxt
    return fields, end


def unfold(value: bytes) -> bytes:
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    return value.strip(b" \t\r")


def normalise_name(name: bytes) -> str:
    """`Message-ID` -> `message_id`; names are ASCII by construction (see _FIELD_NAME)."""
    return name.decode("ascii").lower().replace("-", "_")


def raw_text(value: bytes) -> str:
    """Unfolded value as text, encoded words left alone (parameters are split before decoding)."""
    value = unfold(value)
    return clean_text(value.decode("ascii")) if value.isascii() else guess_text(value)


def decode_value(value: bytes) -> str:
    text = raw_text(value)
    return decode_words(text) if "=?" in text else text


def _word_bytes(encoding: str, text: str) -> bytes:
    data = text.encode("ascii", "replace") if not text.isascii() else text.encode("ascii")
    if encoding in "bB":
        return b64decode_lenient(data)
    return binascii.a2b_qp(data, header=True)


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words anywhere in text; never raises.

    Adjacent words separated only by whitespace are joined without it (RFC 2047 6.2), and when
    they share a charset their bytes are joined before decoding, because senders split
    multi-byte characters across words.
    """
    out: list[str] = []
    pending = bytearray()
    pending_charset = ""
    last = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[last : match.start()]
        charset, encoding, payload = match.groups()
        if pending and (gap.strip(_FOLD_WS) or charset.lower() != pending_charset):
            out.append(decode_text(bytes(pending), pending_charset))
            pending.clear()
        if gap and not (last and gap.strip(_FOLD_WS) == ""):
            out.append(gap)
        pending += _word_bytes(encoding, payload)
        pending_charset = charset.lower()
        last = match.end()
    if pending:
        out.append(decode_text(bytes(pending), pending_charset))
    out.append(text[last:])
    return "".join(out)
