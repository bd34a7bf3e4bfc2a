"""The inbound history: one InboundMessage per message and target, and the queries over it.

Rows are written by the SMTP edge after it has decided its reply (the refusals at RCPT, the
target's verdict after DATA) and read through `read_history`, which `GET .../incoming_statuses`
and the dashboard both call with their query parameters (parsing and paging: `services.paging`).
The target URL is stored as shown to people (a password in it masked), never with credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session

from ..models import InboundMessage
from ..models.base import utcnow
from ..models.inbound_message import recipients_text
from .addresses import display_target
from .json_fields import TIME, Field, as_dict
from .outcomes import OUTCOMES, outcome_condition
from .paging import (
    Cursor,
    InvalidQuery,
    Page,
    QueryParams,
    choice_param,
    cursor_param,
    keyset_page,
    like_pattern,
    page_limit,
    row_id,
    text_param,
    time_range,
)

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
    # Names this recording wherever it is written again (the SMTP edge's retries and spool).
    recording_id: UUID = field(default_factory=uuid4)
    # The message store's object key for the raw message; what a re-send fetches (services/resend.py).
    stored_message_key: str | None = None
    helo_domain: str | None = None



HISTORY_COLUMNS = (
    "resource_id", "address_id", "received_at", "envelope_from", "envelope_to", "recipients",
    "message_id", "subject", "size", "spf_result", "tls", "remote_ip", "target_url", "status",
    "http_status", "smtp_reply", "response_body", "target_ms", "recording_id",
    "dkim_result", "dmarc_result",
    "stored_message_key", "helo_domain",
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
        "recording_id": delivery.recording_id,
        "dkim_result": delivery.dkim_result,
        "dmarc_result": delivery.dmarc_result,
        "stored_message_key": delivery.stored_message_key,
        "helo_domain": storable_text(delivery.helo_domain),
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
    outcome: str | None = None  # accepted, rejected or deferred (services.outcomes)
    to: str | None = None  # case-insensitive substring of any of the message's recipients
    sender: str | None = None  # case-insensitive substring of the envelope sender
    subject: str | None = None  # case-insensitive substring
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    dkim: str | None = None  # exact dkim_result (see `auth_result_filter`)
    dmarc: str | None = None  # exact dmarc_result


def history_filter(params: QueryParams) -> HistoryFilter:
    """The filters of `incoming_statuses` (and the dashboard's inbound page) from its query."""
    since, until = time_range(params)
    return HistoryFilter(
        status=text_param(params, "status"),
        outcome=choice_param(params, "outcome", OUTCOMES),
        to=text_param(params, "to"),
        sender=text_param(params, "from"),
        subject=text_param(params, "subject"),
        since=since,
        until=until,
        dkim=_auth_param(params, "dkim"),
        dmarc=_auth_param(params, "dmarc"),
    )


def history_query(resource_id: str, filters: HistoryFilter) -> Select[InboundMessage]:
    """Served by ix_inbound_messages_resource_received (paged newest first by `keyset_page`); a
    `subject` or `to` search that few rows match by their trigram indexes (migration 0017)."""
    query = select(InboundMessage).where(InboundMessage.resource_id == resource_id)
    if filters.status:
        query = query.where(InboundMessage.status == filters.status)
    if filters.outcome:
        query = query.where(outcome_condition(filters.outcome))
    if filters.to:
        # Any recipient of the message, not only the one the row is for (envelope.to). The first
        # condition is what ix_inbound_messages_to_trgm serves (all of them as one text); the
        # second keeps the match exact (a pattern spanning two recipients matches no single one).
        pattern = like_pattern(filters.to)
        recipient = func.unnest(InboundMessage.recipients).column_valued("recipient")
        everyone = recipients_text(InboundMessage.envelope_to, InboundMessage.recipients)
        query = query.where(
            everyone.ilike(pattern, escape="\\"),
            or_(
                InboundMessage.envelope_to.ilike(pattern, escape="\\"),
                exists(select(1).where(recipient.ilike(pattern, escape="\\"))),
            ),
        )
    if filters.sender:
        query = query.where(InboundMessage.envelope_from.ilike(like_pattern(filters.sender), escape="\\"))
    if filters.subject:
        query = query.where(InboundMessage.subject.ilike(like_pattern(filters.subject), escape="\\"))
    query = _auth_filters(query, filters)
    if filters.since:
        query = query.where(InboundMessage.received_at >= filters.since)
    if filters.until:
        query = query.where(InboundMessage.received_at < filters.until)
    return query


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


def _auth_param(params: QueryParams, name: str) -> str | None:
    try:
        return auth_result_filter(name, text_param(params, name))
    except ValueError as exc:
        raise InvalidQuery(str(exc)) from None


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
    after: Cursor[int] | None = None,
) -> tuple[list[InboundMessage], Cursor[int] | None]:
    """One page of at most `limit` rows, newest first, and the cursor of the next page."""
    return keyset_page(
        session, history_query(resource_id, filters), InboundMessage.received_at, InboundMessage.id,
        limit=limit, after=after,
    )


def read_history(session: Session, resource_id: str, params: QueryParams) -> Page:
    """A page of the inbound history as `incoming_statuses` answers it; `InvalidQuery` for bad input."""
    filters = history_filter(params)
    limit = page_limit(params)
    after = cursor_param(params, row_id)
    rows, following = history_page(session, resource_id, filters, limit=limit, after=after)
    return Page([incoming_status(row) for row in rows], following.encode() if following else None)


def find_delivery(session: Session, resource_id: str, row_id: int) -> InboundMessage | None:
    """One history row of the resource; None for another resource's or an unknown id alike."""
    return session.scalar(
        select(InboundMessage).where(InboundMessage.id == row_id, InboundMessage.resource_id == resource_id)
    )


RESENDS_SHOWN = 20


def resends_of(session: Session, resource_id: str, row_id: int) -> list[InboundMessage]:
    """The latest re-sends of a message, newest first (ix_inbound_messages_resent_from_id)."""
    return list(session.scalars(
        select(InboundMessage)
        .where(InboundMessage.resent_from_id == row_id, InboundMessage.resource_id == resource_id)
        .order_by(InboundMessage.id.desc())
        .limit(RESENDS_SHOWN)
    ))


INCOMING_FIELDS = (
    Field("id", "id"),
    Field("received_at", "received_at", TIME),
    Field("status", "status"),
    Field("http_status", "http_status"),
    Field("from", "envelope_from"),
    Field("to", "envelope_to"),
    Field("recipients", "recipients"),
    Field("message_id", "message_id"),
    Field("subject", "subject"),
    Field("size", "size"),
    Field("spf", "spf_result"),
    Field("dkim", "dkim_result"),
    Field("dmarc", "dmarc_result"),
    Field("tls", "tls"),
    Field("remote_ip", "remote_ip"),
    Field("target_url", "target_url"),
    Field("smtp_reply", "smtp_reply"),
    Field("response_body", "response_body"),
    Field("target_ms", "target_ms"),
    Field("resent_from_id", "resent_from_id"),
)
"""A history row as the API shows it (the target URL was stored masked); the archive has the
database write the same fields (services/json_fields.py)."""


def incoming_status(row: InboundMessage) -> dict[str, Any]:
    """One history row as the API shows it."""
    return as_dict(INCOMING_FIELDS, row)
