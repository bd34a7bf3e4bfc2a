"""Raw RFC 5322 bytes -> ParsedMessage, in bounded time and memory, never failing on bad content.

An own MIME walker instead of the `email` package: it works on offsets into the raw bytes (no
tree of copies, no per-line Python objects), its loops are explicit so every cap is enforced
where the work happens, and it cannot recurse (an explicit stack). See the package docstring
for the decisions on nested messages, caps and charsets.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass

from .charsets import decode_text
from .headers import (
    TooManyHeaders,
    decode_value,
    normalise_name,
    raw_text,
    split_fields,
    unfold,
)
from .params import parse_header_params
from .reply import extract_reply
from .transfer import decode_body

_MIME_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_BOUNDARY = 200
_BOUNDARY = re.compile(rb'(?:^|;)[ \t]*boundary[ \t]*=[ \t]*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)
_FIRST_DELIMITER = re.compile(
    rb"(?:[ \t]*\r?\n)*--([\x21-\x7e]{1,200}?)(?:--)?[ \t]*\r?\n[\x21-\x39\x3b-\x7e]+[ \t]*:"
)
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_BODY_TYPES = frozenset({"text/plain", "text/html"})
UNPARSED_NAME = "unparsed-part.eml"


@dataclass(frozen=True)
class ParseLimits:
    max_depth: int = 32  # nested multiparts followed; deeper ones are passed on whole
    max_parts: int = 1000  # MIME parts in the whole message; more -> MessageTooComplex
    max_headers: int = 1000  # header fields of one part; more -> MessageTooComplex


DEFAULT_LIMITS = ParseLimits()


class MessageTooComplex(Exception):
    """Permanent: the message exceeds ParseLimits; the edge answers 554 5.6.0 and posts nothing."""


@dataclass(frozen=True)
class Attachment:
    file_name: str
    content_type: str
    content: bytes
    disposition: str  # "attachment" or "inline"
    content_id: str | None = None  # with angle brackets
    url: str | None = None  # set by the attachment store, which then empties content
    size: int = -1  # decoded length; taken from content when not given

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.content))


@dataclass(frozen=True)
class ParsedMessage:
    headers: list[tuple[str, str]]  # (normalised name, decoded value), top-most first
    plain: str | None
    html: str | None
    reply_plain: str | None
    attachments: list[Attachment]
    message_id: str | None
    subject: str | None
    from_: str | None
    md5: str  # hex MD5 of the raw message
    notes: tuple[str, ...] = ()  # what was recovered from (for logs), e.g. a passed-on subtree


def parse_message(raw: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> ParsedMessage:
    walker = _Walker(raw, limits)
    fields, body_start = walker.fields(0, len(raw))
    headers = [(normalise_name(name), decode_value(value)) for name, value in fields]
    walker.walk(fields, body_start)
    plain = _join(walker.plain)
    first = _first_values(headers, ("message_id", "subject", "from"))
    return ParsedMessage(
        headers=headers,
        plain=plain,
        html=_join(walker.html),
        reply_plain=extract_reply(plain) if plain is not None else None,
        attachments=walker.attachments,
        message_id=first["message_id"],
        subject=first["subject"],
        from_=first["from"],
        md5=hashlib.md5(raw, usedforsecurity=False).hexdigest(),
        notes=tuple(walker.notes),
    )


def _first_values(headers: list[tuple[str, str]], names: tuple[str, ...]) -> dict[str, str | None]:
    found: dict[str, str | None] = dict.fromkeys(names)
    for name, value in headers:
        if name in found and found[name] is None:
            found[name] = value
    return found


def _join(texts: list[str]) -> str | None:
    if not texts:
        return None
    out = [texts[0]]
    for text in texts[1:]:
        if not out[-1].endswith("\n") and out[-1]:
            out.append("\n")
        out.append(text)
    return "".join(out)


# One work item: (entity start, header fields, body start, end, multipart depth, default type).
_Item = tuple[int, list[tuple[bytes, bytes]], int, int, int, str]


class _Walker:
    def __init__(self, raw: bytes, limits: ParseLimits) -> None:
        self.raw = raw
        self.view = memoryview(raw)
        self.limits = limits
        self.parts = 1
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.notes: list[str] = []

    def fields(self, start: int, end: int) -> tuple[list[tuple[bytes, bytes]], int]:
        try:
            return split_fields(self.raw, start, end, self.limits.max_headers)
        except TooManyHeaders:
            raise MessageTooComplex(
                f"more than {self.limits.max_headers} header fields in one part"
            ) from None

    def walk(self, fields: list[tuple[bytes, bytes]], body_start: int) -> None:
        stack: list[_Item] = [(0, fields, body_start, len(self.raw), 0, "text/plain")]
        while stack:
            start, fields, body, end, depth, default = stack.pop()
            mime = {name.lower(): value for name, value in reversed(fields)}
            ctype, params = _content_type(mime.get(b"content-type"), default)
            if ctype.startswith("multipart/"):
                if depth >= self.limits.max_depth:
                    self._pass_on(start, end)
                    continue
                spans = self._split(body, end, _boundary(mime.get(b"content-type", b"")))
                if not spans and (guess := self._guess_boundary(body, end)):
                    self.notes.append(f"{ctype}: boundary taken from the body")
                    spans = self._split(body, end, guess)
                if spans:
                    child = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
                    items = [(s, *self.fields(s, e), e, depth + 1, child) for s, e in spans]
                    stack.extend(reversed(items))
                    continue
                if not self.raw[body:end].strip():
                    continue
                self.notes.append(f"{ctype} without usable parts read as text")
                ctype, params = "text/plain", {}
            self._leaf(mime, ctype, params, body, end)

    def _pass_on(self, start: int, end: int) -> None:
        """A subtree deeper than max_depth goes on whole, as one attachment, unparsed."""
        self.notes.append(f"multipart nesting over {self.limits.max_depth}: subtree passed on")
        self.attachments.append(
            Attachment(UNPARSED_NAME, "message/rfc822", self.raw[start:end], "attachment")
        )

    def _split(self, body: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
        """Spans of the body parts between delimiter lines (RFC 2046 5.1.1).

        A missing close delimiter ends the last part at the end of the enclosing body; no
        delimiter at all gives no parts.
        """
        if not 0 < len(boundary) <= _MAX_BOUNDARY:
            return []
        raw = self.raw
        delimiter = re.compile(rb"\n--" + re.escape(boundary) + rb"(--)?[ \t]*(?=\r?\n|\Z)")
        spans: list[tuple[int, int]] = []
        part_start = -1
        pos = max(body - 1, 0)
        while (match := delimiter.search(raw, pos, end)) is not None:
            if part_start >= 0:
                cut = match.start()
                if cut > part_start and raw[cut - 1] == 0x0D:
                    cut -= 1
                spans.append((part_start, max(cut, part_start)))
                self._count_part()
            after = match.end()
            if match.group(1):
                # A close delimiter followed by more delimiters of the same boundary: a nested
                # multipart reused its parent's boundary (broken senders, spam). Keep reading,
                # as stdlib does, so the parts after it are not lost in the epilogue.
                if delimiter.search(raw, after, end) is None:
                    return spans
                part_start = -1
                pos = after
                continue
            after += 2 if raw.startswith(b"\r\n", after, end) else 1 if after < end else 0
            part_start = after
            pos = after - 1
        if part_start >= 0:
            spans.append((part_start, end))
            self._count_part()
        return spans

    def _guess_boundary(self, body: int, end: int) -> bytes:
        """The boundary of a body whose first line is a delimiter line followed by a header.

        Spam often declares one boundary and uses another; this recovers its parts.
        """
        match = _FIRST_DELIMITER.match(self.raw, body, end)
        return match.group(1) if match else b""

    def _count_part(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_parts:
            raise MessageTooComplex(f"more than {self.limits.max_parts} MIME parts")

    def _leaf(
        self, mime: dict[bytes, bytes], ctype: str, params: dict[str, str], body: int, end: int
    ) -> None:
        encoding = raw_text(mime.get(b"content-transfer-encoding", b"")).lower()
        disposition, disp_params = "", dict[str, str]()
        if b"content-disposition" in mime:
            disposition, disp_params = parse_header_params(raw_text(mime[b"content-disposition"]))
        file_name = _file_name(disp_params.get("filename") or params.get("name") or "")
        if ctype == "":
            guessed = mimetypes.guess_type(file_name, strict=False)[0] if file_name else None
            ctype = guessed or ("application/octet-stream" if file_name else "text/plain")
        data = decode_body(self.view[body:end], encoding.split(";")[0].strip())
        if ctype in _BODY_TYPES and disposition != "attachment" and not file_name:
            text = decode_text(data, params.get("charset"))
            (self.plain if ctype == "text/plain" else self.html).append(
                text.replace("\r\n", "\n") if "\r" in text else text
            )
            return
        content_id = raw_text(mime[b"content-id"]) if b"content-id" in mime else ""
        if content_id and not content_id.startswith("<"):
            content_id = f"<{content_id}>"
        if disposition not in ("attachment", "inline"):
            disposition = "inline" if content_id else "attachment"
        self.attachments.append(
            Attachment(
                file_name=file_name or _fallback_name(ctype),
                content_type=ctype,
                content=data,
                disposition=disposition,
                content_id=content_id or None,
            )
        )


def _content_type(value: bytes | None, default: str) -> tuple[str, dict[str, str]]:
    """(type, params); "" for an invalid type (the leaf decides from the file name)."""
    if value is None:
        return default, {}
    ctype, params = parse_header_params(raw_text(value))
    if not _MIME_TYPE.match(ctype):
        # RFC 2045 5.2 says invalid means text/plain; a named file is better guessed by its name.
        return "", params
    return ctype, params


def _boundary(content_type: bytes) -> bytes:
    """The boundary parameter as raw bytes: it must match the body byte for byte."""
    match = _BOUNDARY.search(unfold(content_type))
    if match is None:
        return b""
    return (match.group(1) if match.group(1) is not None else match.group(2)).strip(b" \t")


def _file_name(name: str) -> str:
    """Drop directory parts (old clients send C:\\path\\file) and control characters."""
    return _CONTROL.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()


def _fallback_name(ctype: str) -> str:
    if ctype in _MESSAGE_TYPES:
        return "message.eml"
    return "attachment" + (mimetypes.guess_extension(ctype, strict=False) or ".bin")
