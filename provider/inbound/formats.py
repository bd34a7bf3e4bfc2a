"""The POST bodies: JSON (Normalized), Multipart (Normalized), Raw, and Raw as JSON.

Built for the edge's hot path and for 25 MB attachments: the JSON document is serialised once
without attachment contents, and each attachment's base64 (from binascii, already JSON-safe) is
written after it into an `io.BytesIO`, a piece at a time, so no multi-megabyte string is escaped
or encoded again, and the body is the only copy of the base64 (`getvalue()` hands over the
buffer itself).
"""

from __future__ import annotations

import binascii
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from .envelope import Envelope, envelope_fields
from .formdata import FilePart, encode_form
from .parse import Attachment, ParsedMessage

FORMATS = frozenset({"json", "multipart", "raw", "raw_json"})
_ANGLE_ADDRESS = re.compile(r"[ \t]*<[ \t]*([^<>]*?)[ \t]*>[ \t]*")
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Payload:
    content_type: str
    body: bytes


def render(
    fmt: str,
    raw: bytes,
    parsed: ParsedMessage,
    envelope: Envelope,
    *,
    size_as_string: bool = False,
) -> Payload:
    if fmt == "json":
        return _json(parsed, envelope, size_as_string)
    if fmt == "multipart":
        return _multipart(parsed, envelope)
    if fmt == "raw":
        content_type, body = encode_form(
            [("message", raw), *_flatten("envelope", envelope_fields(envelope, parsed.md5))], []
        )
        return Payload(content_type, body)
    if fmt == "raw_json":
        # JSON cannot carry bytes: the message is read as UTF-8 with invalid bytes replaced.
        # `envelope.md5` is of the original bytes; the multipart Raw format is byte exact.
        document = {
            "message": raw.decode("utf-8", "replace"),
            "envelope": envelope_fields(envelope, parsed.md5),
        }
        return Payload(JSON_TYPE, _dumps(document))
    raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")


def header_fields(parsed: ParsedMessage) -> dict[str, str | list[str]]:
    """Normalised headers: a string when a name occurs once, else a list, top-most first.

    `return_path` is the bare address (`<a@b.example>` -> `a@b.example`, `<>` -> ""), as in
    CloudMailin's example and real payloads; any other shape is passed on as it came.
    """
    grouped: dict[str, list[str]] = {}
    for name, value in parsed.headers:
        if name == "return_path" and (bare := _ANGLE_ADDRESS.fullmatch(value)):
            value = bare.group(1)
        grouped.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def _dumps(document: Any) -> bytes:
    # surrogates cannot occur (all text was decoded with "replace"); "replace" is belt and braces.
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


def _attachment_meta(attachment: Attachment, size_as_string: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "file_name": attachment.file_name,
        "content_type": attachment.content_type,
        "size": str(attachment.size) if size_as_string else attachment.size,
        "disposition": attachment.disposition,
    }
    if attachment.content_id:
        meta["content_id"] = attachment.content_id
    if attachment.url is not None:
        meta["url"] = attachment.url
    return meta


def _json(parsed: ParsedMessage, envelope: Envelope, size_as_string: bool) -> Payload:
    document: dict[str, Any] = {
        "headers": header_fields(parsed),
        "envelope": envelope_fields(envelope, parsed.md5),
        "plain": parsed.plain,
        "html": parsed.html,
        "reply_plain": parsed.reply_plain,
        "attachments": [],
    }
    head = _dumps(document)
    if not parsed.attachments:
        return Payload(JSON_TYPE, head)
    # head ends with `"attachments":[]}`: reopen the list and splice the attachments in.
    body = io.BytesIO()
    body.write(head[:-2])
    for index, attachment in enumerate(parsed.attachments):
        meta = _dumps(_attachment_meta(attachment, size_as_string))
        body.write(b"," if index else b"")
        if attachment.url is not None:
            body.write(meta)
        else:
            body.write(meta[:-1])
            body.write(b',"content":"')
            _write_base64(body, attachment.content)
            body.write(b'"}')
    body.write(b"]}")
    return Payload(JSON_TYPE, body.getvalue())


_BASE64_PIECE = 3 << 16
"""Bytes encoded at a time: a multiple of 3, so the pieces' base64 joins without padding."""


def _write_base64(out: io.BytesIO, content: bytes) -> None:
    """The base64 of `content`, written piece by piece: a 25 MB attachment's 33 MB of base64
    never exists as one more string beside the body it goes into."""
    view = memoryview(content)
    for start in range(0, len(view), _BASE64_PIECE):
        out.write(binascii.b2a_base64(view[start : start + _BASE64_PIECE], newline=False))


def _flatten(prefix: str, value: Any) -> list[tuple[str, str | bytes]]:
    """Bracket names as Rack/PHP read them: a[b][c]; lists get indexes; all values strings."""
    if isinstance(value, dict):
        out: list[tuple[str, str | bytes]] = []
        for key, item in value.items():
            out += _flatten(f"{prefix}[{key}]", item)
        return out
    if isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            out += _flatten(f"{prefix}[{index}]", item)
        return out
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    return [(prefix, str(value))]


def _multipart(parsed: ParsedMessage, envelope: Envelope) -> Payload:
    fields: list[tuple[str, str | bytes]] = []
    for name in ("plain", "html", "reply_plain"):
        text = getattr(parsed, name)
        if text is not None:
            fields.append((name, text))
    # Headers: the index only when the header repeats (a list), as the spec says.
    fields += _flatten("headers", header_fields(parsed))
    fields += _flatten("envelope", envelope_fields(envelope, parsed.md5))
    files: list[FilePart] = []
    for attachment in parsed.attachments:
        if attachment.url is not None:
            # url first: Rack starts a new hash in `attachments[]` when a key repeats.
            meta = {"url": attachment.url, **_attachment_meta(attachment, size_as_string=True)}
            fields += [(f"attachments[][{key}]", str(value)) for key, value in meta.items()]
        else:
            files.append(
                FilePart(
                    "attachments[]",
                    attachment.file_name,
                    attachment.content_type,
                    attachment.content,
                )
            )
    content_type, body = encode_form(fields, files)
    return Payload(content_type, body)
