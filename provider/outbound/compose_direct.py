"""The common shapes of an API message written as bytes directly, the same bytes the email package
writes for them.

Composing through `EmailMessage` cost about a quarter of the web's CPU per API message: each
header is parsed into a tree and refolded, several times over while parts are built and moved.
Most messages are simple: ASCII header values that fit on one line, addresses without quoting, a
text and/or an HTML part, attachments with plain file names. For those the result is known, so it
is written here; `compose_direct` answers None for anything else (non-ASCII or long headers, quoted
display names, inline images, a header the email package parses as structured), and `compose`
takes the email package's path. The bodies are encoded by the email package's own encoders
(`email.contentmanager`), so 7bit / quoted-printable / base64 are chosen and written as there.
tests/outbound/test_compose_direct.py compares both paths byte for byte (boundaries aside) over
every shape this module takes and the edges where it must give up.
"""

from __future__ import annotations

import base64
import random
import re
import sys
from collections.abc import Sequence
from email import contentmanager, policy
from email.headerregistry import HeaderRegistry

from .request import Attachment

MAX_LINE: int = policy.SMTP.max_line_length or 78
"""78: a longer header line is folded by the email package, so it is not written here."""
_STRUCTURED = frozenset(HeaderRegistry().registry)
"""Header names the email package parses (addresses, dates, ids...): rewritten, not copied."""
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_DOMAIN}"
_ADDRESS = rf"(?:{_ATOM}(?: {_ATOM})* <{_ADDR_SPEC}>|{_ADDR_SPEC})"
_ADDRESS_LIST = re.compile(rf"{_ADDRESS}(?:, {_ADDRESS})*")
_UNSTRUCTURED = re.compile(r"[!-~]+(?: [!-~]+)*")
_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d [+-]\d{4}"
)
_MESSAGE_ID = re.compile(rf"<{_ADDR_SPEC}>")
_FILE_NAME = re.compile(r"[A-Za-z0-9._-]+")
_CONTENT_TYPE = re.compile(r"[a-z0-9.+_-]+/[a-z0-9.+_-]+")
_OWN_FIELDS = {
    "from": _ADDRESS_LIST, "to": _ADDRESS_LIST, "cc": _ADDRESS_LIST, "subject": _UNSTRUCTURED,
    "date": _DATE, "message-id": _MESSAGE_ID,
}
_WIDTH = len(repr(sys.maxsize - 1))


class _NotSimple(Exception):
    """The message has something the email package would rewrite: compose it there."""


def _line(text: str) -> bytes:
    if len(text) > MAX_LINE or not text.isascii():
        raise _NotSimple
    return text.encode("ascii") + b"\r\n"


def _field(name: str, value: str, pattern: re.Pattern[str]) -> bytes:
    if "=?" in value or not pattern.fullmatch(value):
        raise _NotSimple
    return _line(f"{name}: {value}")


def _boundary(parts: Sequence[bytes]) -> str:
    """As `email.generator.Generator._make_boundary` makes them, and never a line of the parts."""
    while True:
        boundary = "=" * 15 + f"{random.randrange(sys.maxsize):0{_WIDTH}d}" + "=="
        marker = b"--" + boundary.encode("ascii")
        if not any(marker in part for part in parts):
            return boundary


def _multipart(subtype: str, parts: Sequence[bytes]) -> tuple[bytes, bytes]:
    """The Content-Type field (folded as the email package folds it) and the body of a multipart."""
    boundary = _boundary(parts)
    head = f"Content-Type: multipart/{subtype}; boundary=\"{boundary}\""
    if len(head) > MAX_LINE:
        head = f"Content-Type: multipart/{subtype};\r\n boundary=\"{boundary}\""
    marker = b"--" + boundary.encode("ascii")
    body = marker + b"\r\n" + (b"\r\n" + marker + b"\r\n").join(parts) + b"\r\n" + marker + b"--\r\n"
    return head.encode("ascii") + b"\r\n", body


def _text(text: str, subtype: str, cte: str | None) -> tuple[bytes, bytes]:
    chosen, data = contentmanager._encode_text(text, "utf-8", cte, policy.SMTP)  # type: ignore[attr-defined]
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {chosen}\r\n'
    return head.encode("ascii"), data.encode("ascii").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _attachment(attachment: Attachment) -> bytes:
    if not _FILE_NAME.fullmatch(attachment.file_name) or not _CONTENT_TYPE.fullmatch(attachment.content_type):
        raise _NotSimple
    head = (
        _line(f"Content-Type: {attachment.content_type}")
        + b"Content-Transfer-Encoding: base64\r\n"
        + _line(f'Content-Disposition: attachment; filename="{attachment.file_name}"')
    )
    return head + b"\r\n" + base64.encodebytes(attachment.content).replace(b"\n", b"\r\n")


def compose_direct(
    own: Sequence[tuple[str, str]],
    custom: Sequence[tuple[str, str]],
    texts: Sequence[tuple[str, str, str | None]],
    attachments: Sequence[Attachment],
) -> bytes | None:
    """The message `compose` would write, or None when it is not one of the simple shapes.

    `own`: the fields compose sets itself (From, To, Cc, Subject, Date, Message-ID), in order;
    `custom`: the request's `headers`; `texts`: (content, subtype, cte) for the plain and/or
    HTML part, in that order; `attachments`: the ones that become `attachment` parts.
    """
    try:
        fields = b"".join(_field(name, value, _OWN_FIELDS[name.lower()]) for name, value in own)
        for name, value in custom:
            if name.lower() in _STRUCTURED:
                raise _NotSimple
            fields += _field(name, value, _UNSTRUCTURED)
        if len(texts) == 1:
            head, body = _text(*texts[0])
        else:
            parts = [head + b"\r\n" + body for head, body in (_text(*text) for text in texts)]
            head, body = _multipart("alternative", parts)
        if attachments:
            parts = [head + b"\r\n" + body, *(_attachment(a) for a in attachments)]
            head, body = _multipart("mixed", parts)
    except _NotSimple:
        return None
    if head.startswith(b"Content-Type: text/"):
        return head + b"MIME-Version: 1.0\r\n" + fields + b"\r\n" + body
    return b"MIME-Version: 1.0\r\n" + head + fields + b"\r\n" + body
