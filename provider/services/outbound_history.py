"""The outbound history: what an account sent, each recipient's state, and the queries over it.

`GET .../messages` (a page, newest first) and `GET .../messages/<id>` (one message with every
event) read it here, and the dashboard is to call the same functions: query parameters come in as
a plain mapping and are parsed and paged by `services.paging` exactly as the inbound history is.

A page is two statements: the messages (keyset on ix_outbound_messages_resource_created, the
recipient filters as one EXISTS over outbound_recipients) and their recipients (selectinload).
Events are left out of a page (a retried recipient has dozens); `GET .../messages/<id>` has them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session, selectinload

from ..models import OutboundMessage, OutboundRecipient
from ..models.outbound import PENDING_STATES, RECIPIENT_STATES
from .json_fields import TEXT, TIME, Field, as_dict
from .paging import (
    Cursor,
    Page,
    QueryParams,
    choice_param,
    cursor_param,
    keyset_page,
    like_pattern,
    page_limit,
    text_param,
    time_range,
    uuid_key,
)


@dataclass(frozen=True)
class MessageFilter:
    state: str | None = None  # some recipient is in this state
    to: str | None = None  # case-insensitive substring of some recipient's address
    tag: str | None = None  # one of the message's tags, exactly
    since: datetime | None = None  # accepted at or after
    until: datetime | None = None  # accepted before


def message_filter(params: QueryParams) -> MessageFilter:
    since, until = time_range(params)
    return MessageFilter(
        state=choice_param(params, "state", RECIPIENT_STATES),
        to=text_param(params, "to"),
        tag=text_param(params, "tag"),
        since=since,
        until=until,
    )


def messages_query(resource_id: str, filters: MessageFilter) -> Select[OutboundMessage]:
    query = select(OutboundMessage).where(OutboundMessage.resource_id == resource_id)
    if filters.state or filters.to:
        # Both on the same recipient: `state=bounced&to=ann` is "messages whose ann... bounced".
        # resource_id lets PostgreSQL start from ix_outbound_recipients_resource_address instead.
        recipient = select(1).where(
            OutboundRecipient.message_id == OutboundMessage.id,
            OutboundRecipient.resource_id == resource_id,
        )
        if filters.state:
            recipient = recipient.where(OutboundRecipient.state == filters.state)
        if filters.to:
            pattern = like_pattern(filters.to)
            recipient = recipient.where(OutboundRecipient.address.ilike(pattern, escape="\\"))
        query = query.where(exists(recipient))
    if filters.tag:
        query = query.where(OutboundMessage.tags.contains([filters.tag]))
    if filters.since:
        query = query.where(OutboundMessage.created_at >= filters.since)
    if filters.until:
        query = query.where(OutboundMessage.created_at < filters.until)
    return query


def messages_page(
    session: Session,
    resource_id: str,
    filters: MessageFilter,
    *,
    limit: int,
    after: Cursor[uuid.UUID] | None = None,
) -> tuple[list[OutboundMessage], Cursor[uuid.UUID] | None]:
    query = messages_query(resource_id, filters).options(selectinload(OutboundMessage.recipients))
    return keyset_page(
        session, query, OutboundMessage.created_at, OutboundMessage.id, limit=limit, after=after
    )


def read_messages(session: Session, resource_id: str, params: QueryParams) -> Page:
    """A page of sent messages as `GET .../messages` answers it; `InvalidQuery` for bad input."""
    filters = message_filter(params)
    limit = page_limit(params)
    after = cursor_param(params, uuid_key)
    rows, following = messages_page(session, resource_id, filters, limit=limit, after=after)
    items = [message_status(row, events=False) for row in rows]
    return Page(items, following.encode() if following else None)


def find_message(session: Session, resource_id: str, message_id: str) -> OutboundMessage | None:
    """One of the account's messages with its recipients and their events; None for another
    account's, an unknown or a malformed id alike."""
    try:
        wanted = uuid.UUID(message_id)
    except ValueError:
        return None
    return session.scalar(
        select(OutboundMessage)
        .where(OutboundMessage.id == wanted, OutboundMessage.resource_id == resource_id)
        .options(selectinload(OutboundMessage.recipients).selectinload(OutboundRecipient.events))
    )


EVENT_FIELDS = (
    Field("at", "at", TIME), Field("state", "state"), Field("reply", "reply"), Field("mx", "mx"),
)
RECIPIENT_FIELDS = (
    Field("address", "address"),
    Field("state", "state"),
    Field("attempts", "attempts"),
    Field("next_attempt_at", "next_attempt_at", TIME, when=("state", PENDING_STATES)),
    Field("last_reply", "last_reply"),
)
MESSAGE_FIELDS = (
    Field("id", "id", TEXT),
    Field("created_at", "created_at", TIME),
    Field("source", "source"),
    Field("from", "sender"),
    Field("to", "to"),
    Field("cc", "cc"),
    Field("subject", "subject"),
    Field("message_id", "message_id_header"),
    Field("tags", "tags"),
    Field("priority", "priority"),
    Field("test_mode", "test_mode"),
    Field("size", "size"),
)
"""A sent message, each recipient and each event as the API shows them (then `recipients`, and
each recipient's `events`); the archive has the database write the same (services/json_fields.py)."""


def recipient_status(row: OutboundRecipient, *, events: bool = True) -> dict[str, Any]:
    status = as_dict(RECIPIENT_FIELDS, row)
    if events:
        status["events"] = [as_dict(EVENT_FIELDS, event) for event in row.events]
    return status


def message_status(message: OutboundMessage, *, events: bool = True) -> dict[str, Any]:
    """A message as the API shows it; `events=False` leaves each recipient's events out (lists)."""
    status = as_dict(MESSAGE_FIELDS, message)
    status["recipients"] = [recipient_status(row, events=events) for row in message.recipients]
    return status
