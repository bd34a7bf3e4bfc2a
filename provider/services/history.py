"""The inbound history: one InboundMessage per message and target, and the queries over it.

Rows are written by the SMTP edge after it has decided its reply (the refusals at RCPT, the
target's verdict after DATA) and read by the dashboard and `GET .../incoming_statuses`.
The target URL is stored as shown to people (a password in it masked), never with credentials.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from ..models import InboundMessage
from ..models.base import utcnow
from .addresses import display_target

RESPONSE_BODY_LIMIT = 2048
"""Characters of a failed response body kept (spec: the first 2 KB)."""


@dataclass(frozen=True)
class Delivery:
    """Everything the history keeps about one message (or refusal) for one target."""

    resource_id: str
    address_id: int | None
    envelope_from: str
    envelope_to: str
    status: str
    smtp_reply: str
    recipients: Sequence[str] = ()
    message_id: str | None = None
    subject: str | None = None
    size: int = 0
    spf_result: str | None = None
    tls: bool = False
    dkim_result: str | None = None  # summary: none (unsigned), pass (any signature), else the first's
    dmarc_result: str | None = None
    remote_ip: str | None = None
    target_url: str | None = None
    http_status: int | None = None
    response_body: str | None = None
    target_ms: int | None = None
    received_at: datetime = field(default_factory=utcnow)


def record_delivery(session: Session, delivery: Delivery) -> InboundMessage:
    """Add the row; the caller commits (with the usage counter, when the message counted)."""
    row = InboundMessage(**delivery_row(delivery))
    session.add(row)
    return row


HISTORY_COLUMNS = (
    "resource_id", "address_id", "received_at", "envelope_from", "envelope_to", "recipients",
    "message_id", "subject", "size", "spf_result", "tls", "remote_ip", "target_url", "status",
    "http_status", "smtp_reply", "response_body", "target_ms",
    "dkim_result", "dmarc_result",
)
"""Every column a history row is written with; bulk writers (the SMTP edge's COPY) use these."""


def history_values(delivery: Delivery) -> list[Any]:
    """The row's values in `HISTORY_COLUMNS` order, for a bulk write."""
    row = delivery_row(delivery)
    return [row[column] for column in HISTORY_COLUMNS]


def delivery_row(delivery: Delivery) -> dict[str, Any]:
    """The row's columns: text made storable, the target URL as shown to people, the failed
    response body cut to its first 2 KB."""
    body = delivery.response_body
    return {
        "resource_id": delivery.resource_id,
        "address_id": delivery.address_id,
        "received_at": delivery.received_at,
        "envelope_from": storable_text(delivery.envelope_from),
        "envelope_to": storable_text(delivery.envelope_to),
        "recipients": [storable_text(r) for r in delivery.recipients],
        "message_id": storable_text(delivery.message_id),
        "subject": storable_text(delivery.subject),
        "size": delivery.size,
        "spf_result": delivery.spf_result,
        "tls": delivery.tls,
        "remote_ip": delivery.remote_ip,
        "target_url": display_target(delivery.target_url),
        "status": delivery.status,
        "http_status": delivery.http_status,
        "smtp_reply": delivery.smtp_reply,
        "response_body": storable_text(body[:RESPONSE_BODY_LIMIT]) if body is not None else None,
        "target_ms": delivery.target_ms,
        "dkim_result": delivery.dkim_result,
        "dmarc_result": delivery.dmarc_result,
    }


def storable_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; headers and target bodies are outside our control."""
    if value is None:
        return None
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


# --- Reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryFilter:
    status: str | None = None
    to: str | None = None  # case-insensitive substring of any of the message's recipients
    sender: str | None = None  # case-insensitive substring of the envelope sender
    subject: str | None = None  # case-insensitive substring
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    dkim: str | None = None  # exact dkim_result (see `auth_result_filter`)
    dmarc: str | None = None  # exact dmarc_result


class InvalidCursor(ValueError):
    """A paging cursor this service did not hand out."""


MAX_ROW_ID = 2**63 - 1
"""Row ids are PostgreSQL bigints; a cursor naming a larger one was not handed out here and would
make the query fail instead of matching nothing."""


@dataclass(frozen=True)
class Cursor:
    """Keyset position: the last row of a page (newest first means: continue below it)."""

    received_at: datetime
    id: int

    def encode(self) -> str:
        raw = f"{self.received_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            stamp, _, ident = raw.partition("|")
            received_at = datetime.fromisoformat(stamp)
            if received_at.tzinfo is None:
                raise ValueError("naive time")
            if not (ident.isascii() and ident.isdigit()) or int(ident) > MAX_ROW_ID:
                raise ValueError("not a row id")
            return cls(received_at, int(ident))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidCursor("cursor is not one this API returned") from None


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def history_query(resource_id: str, filters: HistoryFilter) -> Select[Any]:
    """Newest first (received time, then id), served by ix_inbound_messages_resource_received."""
    query = select(InboundMessage).where(InboundMessage.resource_id == resource_id)
    if filters.status:
        query = query.where(InboundMessage.status == filters.status)
    if filters.to:
        # Any recipient of the message, not only the one the row is for (envelope.to).
        pattern = _like(filters.to)
        recipient = func.unnest(InboundMessage.recipients).column_valued("recipient")
        query = query.where(or_(
            InboundMessage.envelope_to.ilike(pattern, escape="\\"),
            exists(select(1).where(recipient.ilike(pattern, escape="\\"))),
        ))
    if filters.sender:
        query = query.where(InboundMessage.envelope_from.ilike(_like(filters.sender), escape="\\"))
    if filters.subject:
        query = query.where(InboundMessage.subject.ilike(_like(filters.subject), escape="\\"))
    query = _auth_filters(query, filters)
    if filters.since:
        query = query.where(InboundMessage.received_at >= filters.since)
    if filters.until:
        query = query.where(InboundMessage.received_at < filters.until)
    return query.order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())


# --- DKIM and DMARC filters -----------------------------------------------------------------------

AUTH_FILTER_VALUES = {
    "dkim": ("none", "pass", "fail", "neutral", "temperror", "permerror"),
    "dmarc": ("none", "pass", "fail", "temperror", "permerror"),
}
"""What `dkim=` and `dmarc=` of incoming_statuses accept: the values the edge records."""


def auth_result_filter(name: str, value: str | None) -> str | None:
    """The `dkim` or `dmarc` filter value, lower-cased; ValueError naming the allowed values."""
    if value is None or value == "":
        return None
    allowed = AUTH_FILTER_VALUES[name]
    if value.lower() not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}")
    return value.lower()


def _auth_filters(query: Select[Any], filters: HistoryFilter) -> Select[Any]:
    if filters.dkim:
        query = query.where(InboundMessage.dkim_result == filters.dkim)
    if filters.dmarc:
        query = query.where(InboundMessage.dmarc_result == filters.dmarc)
    return query


def history_page(
    session: Session,
    resource_id: str,
    filters: HistoryFilter,
    *,
    limit: int,
    after: Cursor | None = None,
) -> tuple[list[InboundMessage], Cursor | None]:
    """One page of at most `limit` rows, and the cursor of the next page (None on the last)."""
    query = history_query(resource_id, filters)
    if after is not None:
        query = query.where(
            or_(
                InboundMessage.received_at < after.received_at,
                and_(
                    InboundMessage.received_at == after.received_at,
                    InboundMessage.id < after.id,
                ),
            )
        )
    rows: list[InboundMessage] = list(session.scalars(query.limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, Cursor(rows[-1].received_at, rows[-1].id)
