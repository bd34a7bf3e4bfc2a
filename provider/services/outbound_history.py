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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session, selectinload

from ..models import OutboundMessage, OutboundRecipient
from ..models.outbound import PENDING_STATES, RECIPIENT_STATES
from .paging import (
    Cursor,
    Page,
    QueryParams,
    choice_param,
    cursor_param,
    iso_time,
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


def recipient_status(
    row: OutboundRecipient, *, events: bool = True, event_rows: Sequence[Any] | None = None
) -> dict[str, Any]:
    """`event_rows`: the recipient's events when read apart from it (the archive's plain rows)."""
    status: dict[str, Any] = {
        "address": row.address,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": iso_time(row.next_attempt_at) if row.state in PENDING_STATES else None,
        "last_reply": row.last_reply,
    }
    if events:
        status["events"] = [
            {"at": iso_time(event.at), "state": event.state, "reply": event.reply, "mx": event.mx}
            for event in (row.events if event_rows is None else event_rows)
        ]
    return status


def message_status(
    message: OutboundMessage,
    *,
    events: bool = True,
    recipients: Sequence[Any] | None = None,
    events_of: Mapping[int, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """A message as the API shows it; `events=False` leaves each recipient's events out (lists).
    `recipients` and `events_of` (recipient id to its events) when they were read apart from the
    message as plain rows (the archive); the ORM's relationships otherwise."""
    rows = message.recipients if recipients is None else recipients
    return {
        "id": str(message.id),
        "created_at": iso_time(message.created_at),
        "source": message.source,
        "from": message.sender,
        "to": message.to,
        "cc": message.cc,
        "subject": message.subject,
        "message_id": message.message_id_header,
        "tags": message.tags,
        "priority": message.priority,
        "test_mode": message.test_mode,
        "size": message.size,
        "recipients": [
            recipient_status(row, events=events,
                             event_rows=None if events_of is None else events_of.get(row.id, ()))
            for row in rows
        ],
    }
