"""From a checked request to the bytes that leave the service.

Messages are built with the standard library's `email` package under the SMTP policy, so every
line ends in CRLF, long lines are encoded (quoted-printable or base64) rather than cut, and
non-ASCII headers are RFC 2047 encoded. A RawMessage keeps its own body byte for byte; only its
line endings are made CRLF (no bare CR or LF leaves the service: SMTP smuggling, RFC 5321 section
2.3.8) and its header block is edited where the request says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesHeaderParser
from email.utils import format_datetime, getaddresses

from markdown_it import MarkdownIt

from .compose_direct import compose_direct
from .errors import OutboundTooBig, RawMismatch
from .limits import MAX_MESSAGE_BYTES
from .request import Attachment, OutboundRequest

LINE_ENDING = re.compile(rb"\r\n|\r|\n")
HEAD_END = re.compile(rb"\r\n\r\n")
FIELD_START = re.compile(rb"([!-9;-~]+)[ \t]*:")

_markdown: MarkdownIt | None = None
Fields = list[tuple[str, str]]
"""Header fields as (name, value), in order."""


def render_markdown(source: str) -> str:
    """CommonMark with tables and strikethrough; raw HTML passes, since the sender owns the mail."""
    global _markdown
    if _markdown is None:
        _markdown = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    return _markdown.render(source)


def crlf(raw: bytes) -> bytes:
    """Every line ending as CRLF, and the message ending in one."""
    pairs = raw.count(b"\r\n")
    if raw.count(b"\n") == pairs and raw.count(b"\r") == pairs:
        normalised = raw  # every CR and LF already in a CRLF (what composing writes): 5x cheaper
    else:
        normalised = LINE_ENDING.sub(b"\r\n", raw)
    return normalised if normalised.endswith(b"\r\n") else normalised + b"\r\n"


def _split_head(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its folded continuation lines) and the rest, from CRLF text."""
    match = HEAD_END.search(raw)
    head, rest = (raw[: match.start() + 2], raw[match.start() + 2 :]) if match else (raw, b"")
    fields: list[bytes] = []
    for line in head.split(b"\r\n")[:-1] if head.endswith(b"\r\n") else head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields, rest


def _field_name(field: bytes) -> str:
    match = FIELD_START.match(field)
    return match.group(1).decode("ascii").lower() if match else ""


def rewrite_head(raw: bytes, *, drop: Iterable[str] = (), add: Iterable[tuple[str, str]] = ()) -> bytes:
    """`raw` (CRLF) with the fields named in `drop` removed and `add` put first, body untouched."""
    dropped = {name.lower() for name in drop}
    fields, rest = _split_head(raw)
    kept = [field for field in fields if _field_name(field) not in dropped]
    added: list[bytes] = []
    for name, value in add:
        carrier = EmailMessage(policy=policy.SMTP)
        carrier[name] = value
        added.append(carrier.as_bytes().split(b"\r\n\r\n", 1)[0])
    return b"\r\n".join([*added, *kept]) + b"\r\n" + rest


def header_values(raw: bytes, name: str) -> list[str]:
    return head_values(raw, name)[name]


def head_values(raw: bytes, *names: str) -> dict[str, list[str]]:
    """Each named field's values (decoded, unfolded), from one parse of the head: parsing it is
    most of what reading a submitted message costs, so it is done once for all the names."""
    head, _ = _split_head(raw)
    parsed = BytesHeaderParser(policy=policy.SMTP).parsebytes(b"\r\n".join(head) + b"\r\n\r\n")
    return {name: [str(value) for value in parsed.get_all(name, [])] for name in names}


def _addresses_in(values: list[str]) -> set[str]:
    return {address.lower() for _, address in getaddresses(values) if address}


def _check_raw(request: OutboundRequest, raw: bytes) -> None:
    if _addresses_in(header_values(raw, "From")) != {request.sender_address.lower()}:
        raise RawMismatch("from")
    wanted_to = {address.lower() for _, address in getaddresses(list(request.to))}
    if _addresses_in(header_values(raw, "To")) != wanted_to:
        raise RawMismatch("to")


def field_names(raw: bytes) -> set[str]:
    """The lower-cased names of the header fields of `raw` (CRLF text)."""
    fields, _ = _split_head(raw)
    return {_field_name(field) for field in fields}


def standard_fields(
    raw: bytes, message_id: str, domain: str, now: datetime, names: set[str] | None = None
) -> list[tuple[str, str]]:
    """Date and Message-ID when the message lacks them (RFC 6409 section 8: a submission server
    may add them); `names`: `field_names(raw)` when the caller has them already."""
    names = field_names(raw) if names is None else names
    added: list[tuple[str, str]] = []
    if "date" not in names:
        added.append(("Date", format_datetime(now)))
    if "message-id" not in names:
        added.append(("Message-ID", f"<{message_id}@{domain}>"))
    return added


def compose_raw(request: OutboundRequest, message_id: str, now: datetime | None = None) -> bytes:
    """A RawMessage as it will be sent: checked against the request, Bcc removed, Subject
    overridden when the request has one."""
    assert request.raw is not None
    raw = crlf(request.raw)
    _check_raw(request, raw)
    drop = {"bcc"}
    add = standard_fields(raw, message_id, request.sender_domain, now or datetime.now(UTC))
    if request.subject is not None:
        drop.add("subject")
        add.append(("Subject", request.subject))
    return _within_limit(rewrite_head(raw, drop=drop, add=add))


def _cte(text: str) -> str | None:
    """7-bit safe: non-ASCII text as quoted-printable, so no receiver needs 8BITMIME (RFC 6152)."""
    return None if text.isascii() else "quoted-printable"


def _texts(request: OutboundRequest) -> tuple[str | None, str | None]:
    """The plain and HTML content: markdown is the plain part and renders the HTML one."""
    html = request.html if request.html is not None else (
        render_markdown(request.markdown) if request.markdown is not None else None
    )
    plain = request.plain if request.plain is not None else request.markdown
    return plain, html


def _body(request: OutboundRequest, plain: str | None, html: str | None) -> EmailMessage:
    message = EmailMessage(policy=policy.SMTP)
    if plain is not None:
        message.set_content(plain, cte=_cte(plain))
        if html is not None:
            message.add_alternative(html, subtype="html", cte=_cte(html))
    elif html is not None:
        message.set_content(html, subtype="html", cte=_cte(html))
    inline = [a for a in request.attachments if a.inline]
    if inline and html is not None:
        html_part: MIMEPart = message
        if message.is_multipart():
            html_part = next(p for p in message.iter_parts() if p.get_content_type() == "text/html")
        for attachment in inline:
            maintype, _, subtype = attachment.content_type.partition("/")
            html_part.add_related(
                attachment.content, maintype, subtype, cid=f"<{attachment.content_id}>",
                filename=attachment.file_name, disposition="inline",
            )
    for attachment in _attached(request, html):
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.content, maintype, subtype, filename=attachment.file_name)
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # the package gives every EmailMessage part one; only the top needs it
    return message


def _attached(request: OutboundRequest, html: str | None) -> list[Attachment]:
    """The attachments that are parts of the mixed message: all but the HTML's inline images."""
    return [a for a in request.attachments if not (a.inline and html is not None)]


def _fields(request: OutboundRequest, message_id: str, now: datetime) -> tuple[Fields, Fields]:
    """The header fields compose sets itself, in order, and the request's own `headers`."""
    own = [("From", request.sender), ("To", ", ".join(request.to))]
    if request.cc:
        own.append(("Cc", ", ".join(request.cc)))
    subject = request.subject
    custom = list(request.headers)
    if subject is None:
        subject = next((value for name, value in custom if name.lower() == "subject"), None)
    custom = [(name, value) for name, value in custom if name.lower() != "subject"]
    if subject is not None:
        own.append(("Subject", subject))
    if not any(name.lower() == "date" for name, _ in custom):
        own.append(("Date", format_datetime(now)))
    own.append(("Message-ID", f"<{message_id}@{request.sender_domain}>"))
    return own, custom


def compose(request: OutboundRequest, message_id: str, now: datetime | None = None) -> bytes:
    """The whole RFC 5322 message for a request, CRLF throughout: written directly for the
    simple shapes (`compose_direct`), by the email package for the others."""
    return compose_fields(request, message_id, now)[0]


def compose_fields(
    request: OutboundRequest, message_id: str, now: datetime | None = None
) -> tuple[bytes, dict[str, str] | None]:
    """`compose`, and when the message was written directly the values of the fields it set
    (lower-cased names: exactly what the head carries), so nobody parses them back."""
    if request.raw is not None:
        return compose_raw(request, message_id, now), None
    own, custom = _fields(request, message_id, now or datetime.now(UTC))
    plain, html = _texts(request)
    direct = _direct(request, own, custom, plain, html)
    if direct is None:
        return _with_email(request, own, custom, plain, html), None
    return _within_limit(crlf(direct)), {name.lower(): value for name, value in own}


def compose_simple(request: OutboundRequest, message_id: str, now: datetime) -> bytes | None:
    """`compose`'s direct path alone: None when the request is not one of its simple shapes."""
    own, custom = _fields(request, message_id, now)
    direct = _direct(request, own, custom, *_texts(request))
    return None if direct is None else crlf(direct)


def compose_with_email(request: OutboundRequest, message_id: str, now: datetime) -> bytes:
    """`compose`'s email package path alone (any shape), which the direct one must equal."""
    own, custom = _fields(request, message_id, now)
    return _with_email(request, own, custom, *_texts(request))


def _direct(request: OutboundRequest, own: Fields, custom: Fields, plain: str | None,
            html: str | None) -> bytes | None:
    if html is not None and any(a.inline for a in request.attachments):
        return None  # multipart/related: the email package's
    texts = [(text, subtype, _cte(text)) for text, subtype in ((plain, "plain"), (html, "html"))
             if text is not None]
    return compose_direct(own, custom, texts, _attached(request, html))


def _with_email(request: OutboundRequest, own: Fields, custom: Fields, plain: str | None,
                html: str | None) -> bytes:
    message = _body(request, plain, html)
    headers = EmailMessage(policy=policy.SMTP)
    for name, value in [*own, *custom]:
        headers[name] = value
    for name, value in headers.items():
        message[name] = value
    return _within_limit(crlf(message.as_bytes(policy=policy.SMTP)))


def _within_limit(raw: bytes) -> bytes:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise OutboundTooBig(MAX_MESSAGE_BYTES)
    return raw


__all__ = [
    "compose", "compose_fields", "compose_raw", "compose_simple", "compose_with_email", "crlf", "field_names",
    "head_values", "header_values", "render_markdown", "rewrite_head", "standard_fields",
]
