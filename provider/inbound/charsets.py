"""Turning body and header bytes into text without ever failing.

Mail declares charsets wrongly all the time: `us-ascii` or `iso-8859-1` on UTF-8 text, names no
codec knows (`x-unknown`), or none at all. The rules, in order:

- absent, unknown or ASCII/Latin-1/Windows-1252 declared: valid UTF-8 wins (a Latin-1 text that is
  also valid UTF-8 with non-ASCII bytes practically never happens), else Windows-1252 (WHATWG reads
  `iso-8859-1` and `us-ascii` that way too);
- any other declared charset that Python knows: decoded with it, undecodable bytes replaced;
  a few legacy names are read as their supersets, as browsers do (`gb2312` as GB18030 ...);
- codecs that are not plain text encodings (`base64`, `zlib`, `idna`, `punycode`, the escape
  codecs) count as unknown: they are either not charsets or cost more than linear time.

NUL characters are replaced by U+FFFD in every text we produce: PostgreSQL text columns and many
JSON consumers reject them, and they never carry meaning in mail text.
"""

from __future__ import annotations

import codecs
from functools import lru_cache

_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
    "big5": "big5hkscs",
}
# Read with the "UTF-8 first" rule because their labels are so often wrong.
_SNIFFED = frozenset({"ascii", "iso8859-1", "cp1252"})
_REFUSED = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "mbcs", "oem"})
_MAX_NAME = 64


@lru_cache(maxsize=256)
def _codec(label: str) -> str | None:
    """The Python codec for a charset label, or None when it is unknown or not a text charset."""
    name = label.strip().strip("\"'").lower()
    # RFC 2231 allows a language after the charset: "utf-8*en".
    name = name.split("*", 1)[0]
    if not name or len(name) > _MAX_NAME:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return None
    return _SUPERSETS.get(info.name, info.name)


def codec_for(label: str | None) -> str | None:
    if not label:
        return None
    return _codec(label[: _MAX_NAME + 8])


def decode_text(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, falling back as the module docstring says."""
    codec = codec_for(charset)
    if codec is None or codec in _SNIFFED:
        if data.isascii():
            text = data.decode("ascii")
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("cp1252", "replace")
    else:
        try:
            text = data.decode(codec, "replace")
        except (UnicodeError, LookupError, ValueError, TypeError):
            text = data.decode("utf-8", "replace")
        if codec == "utf-7":
            # The UTF-7 decoder can return lone surrogates, which no UTF-8 encoder accepts.
            text = text.encode("utf-8", "replace").decode("utf-8")
    return clean_text(text)


def guess_text(data: bytes) -> str:
    """Bytes with no declared charset (raw 8-bit header values): UTF-8, else Windows-1252."""
    return decode_text(data, None)


def clean_text(text: str) -> str:
    if "\x00" in text:
        return text.replace("\x00", "\ufffd")
    return text
