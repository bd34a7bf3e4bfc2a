"""The one shape a message has once accepted, whichever door it came in by.

The JSON API gives a request that is composed here; SMTP submission gives an envelope and the
DATA, whose `x-cloudmta-*` headers set the class and tags and are then removed (with Bcc, which
must never reach a recipient). Both become an `Outgoing`, and the sending service stores that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import getaddresses

from .attachments import refuse_blocked_attachments
from .compose import compose_fields, crlf, field_names, head_values, rewrite_head, standard_fields
from .errors import InvalidAddress, MessageRefused, OutboundTooBig, TooManyRecipients
from .limits import API_TAG, MAX_MESSAGE_BYTES, MAX_RECIPIENTS
from .request import ADDR_SPEC, OutboundRequest, read_priority

CLASS_HEADER = "x-cloudmta-class"
TAGS_HEADER = "x-cloudmta-tags"
SUBMISSION_DROPPED = (CLASS_HEADER, TAGS_HEADER, "bcc")


@dataclass(frozen=True)
class Outgoing:
    source: str
    sender: str
    """The From header (display name kept), for the history."""
    sender_domain: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    recipients: tuple[str, ...]
    """The envelope recipients (RCPT TO), bare addresses."""
    subject: str | None
    message_id_header: str | None
    raw: bytes
    tags: tuple[str, ...]
    priority: str
    test_mode: bool


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def from_api(request: OutboundRequest, message_id: str, now: datetime | None = None) -> Outgoing:
    raw, fields = compose_fields(request, message_id, now or datetime.now(UTC))
    if fields is None:
        fields = {name.lower(): values[0]
                  for name, values in head_values(raw, "Subject", "Message-ID").items() if values}
    subject = request.subject
    if subject is None:
        subject = fields.get("subject")
    return Outgoing(
        source="api",
        sender=request.sender,
        sender_domain=request.sender_domain,
        to=request.to,
        cc=request.cc,
        recipients=tuple(request.recipients),
        subject=subject,
        message_id_header=fields.get("message-id"),
        raw=raw,
        tags=(*request.tags, API_TAG) if API_TAG not in request.tags else request.tags,
        priority=request.priority,
        test_mode=request.test_mode,
    )


def _tags_from(values: list[str]) -> tuple[str, ...]:
    tags: list[str] = []
    for value in values:
        for tag in value.split(","):
            tag = tag.strip()
            if tag and tag not in tags:
                tags.append(tag)
    return tuple(tags)


def from_smtp(
    mail_from: str, rcpt_tos: list[str], data: bytes, message_id: str, now: datetime | None = None
) -> Outgoing:
    """A submitted message: the envelope decides who gets it; the headers only describe it."""
    if len(rcpt_tos) > MAX_RECIPIENTS:
        raise TooManyRecipients(MAX_RECIPIENTS)
    raw = crlf(data)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise OutboundTooBig(MAX_MESSAGE_BYTES)
    if b"\x00" in raw:
        # As the API refuses it in `raw`: no SMTP data may hold one without BINARYMIME (RFC 6152
        # section 2: 8bit lines have no NUL), and none of its header values could be stored.
        raise MessageRefused("The message may not contain NUL characters")
    refuse_blocked_attachments(raw)
    given = head_values(raw, CLASS_HEADER, TAGS_HEADER, "From")
    priority = read_priority(next(iter(given[CLASS_HEADER]), None))
    tags = _tags_from(given[TAGS_HEADER])
    from_header = next(iter(given["From"]), "")
    senders = [address for _, address in getaddresses([from_header]) if address]
    sender_address = senders[0] if senders else mail_from
    if not ADDR_SPEC.fullmatch(sender_address or ""):
        raise InvalidAddress("The message has no valid From address")
    names = field_names(raw)
    if "from" not in names:
        raise MessageRefused("The message has no From header (RFC 5322 section 3.6)")
    add = standard_fields(raw, message_id, domain_of(sender_address), now or datetime.now(UTC), names)
    raw = rewrite_head(raw, drop=SUBMISSION_DROPPED, add=add)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise OutboundTooBig(MAX_MESSAGE_BYTES)
    sent = head_values(raw, "To", "Cc", "Subject", "Message-ID")
    return Outgoing(
        source="smtp",
        sender=from_header or sender_address,
        sender_domain=domain_of(sender_address),
        to=tuple(sent["To"]),
        cc=tuple(sent["Cc"]),
        recipients=tuple(rcpt_tos),
        subject=next(iter(sent["Subject"]), None),
        message_id_header=next(iter(sent["Message-ID"]), None),
        raw=raw,
        tags=tags,
        priority=priority,
        test_mode=False,
    )

