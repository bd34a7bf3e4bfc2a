"""`Content-Type` / `Content-Disposition` values: the main value and its parameters.

Parameters are split on the raw value (encoded words are decoded per parameter afterwards, so a
decoded `;` or `"` cannot split a file name). RFC 2231 forms (`filename*=utf-8''a%20b`,
`filename*0*=` continuations) are joined and decoded; continuation indexes are capped so a
hostile `name*99999999=` costs nothing. Unterminated quotes run to the end of the value.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from .charsets import clean_text, decode_text
from .headers import decode_words

_PARAM = re.compile(r"""\s*([^\s=;"]*)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"?|([^;]*)))?[^;]*;?""", re.DOTALL)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_SECTION = re.compile(r"^(.*?)\*(\d{1,3})(\*?)$")
MAX_PARAMS = 64


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """("type/subtype" or "attachment", lower-case; {param name (lower-case): decoded value})."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    pos = 0
    count = 0
    while pos < len(rest) and count < MAX_PARAMS:
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            break
        pos = match.end()
        name, quoted, bare = match.groups()
        if not name:
            continue
        count += 1
        name = name.lower()
        if quoted is not None:
            text = _UNESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        else:
            text = (bare or "").strip()
        section = _SECTION.match(name)
        if section:
            base, index, extended = section.groups()
            sections.setdefault(base, {})[int(index)] = (text, bool(extended))
        elif name.endswith("*"):
            sections.setdefault(name[:-1], {})[0] = (text, True)
        elif name not in params:
            params[name] = decode_words(text) if "=?" in text else text
    for base, pieces in sections.items():
        # An RFC 2231 value beats a plain one of the same name (RFC 2231 section 4).
        params[base] = _join_sections(pieces)
    return main.strip().lower(), params


def _join_sections(pieces: dict[int, tuple[str, bool]]) -> str:
    charset = ""
    data = bytearray()
    order = sorted(pieces)
    for index in order:
        text, extended = pieces[index]
        if extended:
            if index == order[0] and text.count("'") >= 2:
                charset, _, text = text.split("'", 2)
            data += unquote_to_bytes(text)
        else:
            data += text.encode("utf-8")
    return clean_text(decode_text(bytes(data), charset or "utf-8"))
