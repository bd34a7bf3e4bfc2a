"""Reading a delivery status notification (RFC 3464) that came back to a bounce address.

A DSN is `multipart/report; report-type=delivery-status` whose `message/delivery-status` part
holds one block of per-message fields (`Reporting-MTA`) and one block per recipient
(`Final-Recipient`, `Action`: failed / delayed / delivered / relayed / expanded, `Status`: an
RFC 3463 code, `Diagnostic-Code`: the remote server's reply). Some servers send the
delivery-status part alone, or as `message/global-delivery-status` (RFC 6533); both are read.

Only the first `MAX_READ_BYTES` of a bounce are parsed: the report comes before the returned
message, which may be the whole original with its attachments, and none of that is needed.
Mail that holds no readable report raises `NotADeliveryReport`: vacation replies, and the
plain-text bounces some servers still send, carry nothing a program can rely on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser, HeaderParser

from .bounce_rules import STATUS

MAX_READ_BYTES = 1 << 20
DELIVERY_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
MAX_RECIPIENTS = 1000
"""Per-recipient blocks read at most (a message has at most 20 recipients; a bounce naming
more is not about one of ours)."""
MAX_FIELD_CHARS = 2000
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")


class NotADeliveryReport(ValueError):
    """The mail holds no RFC 3464 report we can read; the message says what is missing."""


@dataclass(frozen=True)
class RecipientStatus:
    recipient: str
    """The address of `Final-Recipient`, without its type and angle brackets."""
    original_recipient: str | None
    action: str
    """Lower-cased: failed, delayed, delivered, relayed or expanded."""
    status: str
    """The RFC 3463 code (`5.1.1`), or "" when the field holds none."""
    diagnostic: str | None
    """`Diagnostic-Code` without its type (`550 5.1.1 No such user`), unfolded."""
    diagnostic_type: str | None
    """Lower-cased, usually `smtp`."""
    remote_mta: str | None

    @property
    def smtp_diagnostic(self) -> str | None:
        return self.diagnostic if self.diagnostic_type == "smtp" else None


@dataclass(frozen=True)
class DeliveryReport:
    reporting_mta: str | None
    recipients: tuple[RecipientStatus, ...]


def parse_report(raw: bytes) -> DeliveryReport:
    """The report in a bounce, or `NotADeliveryReport` saying why there is none."""
    message = BytesParser(policy=policy.compat32).parsebytes(raw[:MAX_READ_BYTES])
    part = _status_part(message)
    if part is None:
        raise NotADeliveryReport("no message/delivery-status part")
    blocks = list(_blocks(part))
    if not blocks:
        raise NotADeliveryReport("the delivery-status part is empty")
    per_message = blocks[0] if _field(blocks[0], "Final-Recipient") is None else None
    recipients = []
    for block in blocks[:MAX_RECIPIENTS + 1]:
        status = _recipient(block)
        if status is not None:
            recipients.append(status)
    if not recipients:
        raise NotADeliveryReport("no per-recipient block with Final-Recipient and Action")
    reporting = _type_and_value(_field(per_message, "Reporting-MTA"))[1] if per_message else None
    return DeliveryReport(reporting, tuple(recipients))


def _status_part(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() in DELIVERY_STATUS_TYPES:
            return part
    return None


def _blocks(part: Message) -> Iterator[Message]:
    """The field blocks of a delivery-status part. The email package splits
    `message/delivery-status` into one Message per block; any other `message/*` type it reads as
    one encapsulated message (the first block), whose body holds the other blocks as text."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        payload = [HeaderParser(policy=policy.compat32).parsestr(_text(payload))]
    for block in payload:
        if not isinstance(block, Message):
            continue
        yield block
        # decode=True: the body's own bytes (the text form would replace non-ASCII ones by "?")
        rest = None if block.is_multipart() else block.get_payload(decode=True)
        if isinstance(rest, bytes) and rest.strip():
            for text in _BLANK_LINE.split(_text(rest)):
                if text.strip():
                    yield HeaderParser(policy=policy.compat32).parsestr(text.strip() + "\n")


def _text(value: object) -> str:
    """Text as read, with the bytes the parser kept as surrogate escapes decoded as UTF-8
    (RFC 6533 reports carry UTF-8 addresses)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _field(block: Message, name: str) -> str | None:
    value = block.get(name)
    if value is None:
        return None
    text = " ".join(_text(str(value)).split())  # unfolds; a Header object becomes its text
    return text[:MAX_FIELD_CHARS] or None


def _type_and_value(field: str | None) -> tuple[str | None, str | None]:
    """`rfc822; <x@y>` -> ("rfc822", "x@y"); a field without a type keeps all of it."""
    if field is None:
        return None, None
    kind, semicolon, value = field.partition(";")
    if not semicolon:
        kind, value = "", field
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return kind.strip().lower() or None, value or None


def _recipient(block: Message) -> RecipientStatus | None:
    recipient = _type_and_value(_field(block, "Final-Recipient"))[1]
    action = _field(block, "Action")
    if recipient is None or action is None:
        return None
    status_field = _field(block, "Status") or ""
    status = STATUS.search(status_field)
    diagnostic_type, diagnostic = _type_and_value(_field(block, "Diagnostic-Code"))
    return RecipientStatus(
        recipient=recipient,
        original_recipient=_type_and_value(_field(block, "Original-Recipient"))[1],
        action=action.split()[0].lower(),
        status=status.group(0) if status else "",
        diagnostic=diagnostic,
        diagnostic_type=diagnostic_type,
        remote_mta=_type_and_value(_field(block, "Remote-MTA"))[1],
    )
