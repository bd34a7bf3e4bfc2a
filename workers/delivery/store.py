"""PostgreSQL as the delivery queue: claiming due recipients and recording what became of them.

A claim moves each picked recipient's `next_attempt_at` a lease into the future and counts the
attempt, in one statement with `FOR UPDATE SKIP LOCKED`, so any number of workers share the work
without ever picking the same recipient twice. A worker that dies mid-delivery (kill -9) leaves
its recipients to come due again when the lease runs out; nothing else has to notice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from provider.models import OutboundEvent, OutboundMessage, OutboundRecipient, Suppression
from provider.models.outbound import BOUNCED, DEFERRED, DELIVERED, RETRIES_EXHAUSTED
from provider.outbound.bounce_rules import is_hard_bounce

from .schedule import next_attempt
from .transport import Reply

_CLAIM = """
WITH picked AS (
    SELECT id FROM outbound_recipients
    WHERE state IN ('queued', 'deferred') AND next_attempt_at <= :now {extra}
    ORDER BY priority_rank, next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE outbound_recipients AS r
SET next_attempt_at = :lease_until, attempts = r.attempts + 1, updated_at = :now
FROM picked WHERE r.id = picked.id
RETURNING r.id, r.message_id, r.resource_id, r.address, r.domain, r.attempts
"""
_CLAIM_ANY = text(_CLAIM.format(extra=""))
_CLAIM_MESSAGE = text(_CLAIM.format(extra="AND message_id = :message_id"))


@dataclass(frozen=True)
class Claimed:
    id: int
    message_id: uuid.UUID
    resource_id: str
    address: str
    domain: str
    attempts: int


@dataclass(frozen=True)
class Message:
    id: uuid.UUID
    resource_id: str
    created_at: datetime
    sender_domain: str
    raw: bytes


@dataclass(frozen=True)
class Result:
    recipient: Claimed
    reply: Reply
    mx: str | None


def claim(
    session: Session, now: datetime, lease: timedelta, limit: int, message_id: uuid.UUID | None = None
) -> list[Claimed]:
    """Due recipients (of `message_id` only, when given), leased to the caller; commits.

    `lease` must be longer than any one attempt can take (connect, commands and DATA timeouts)."""
    params: dict[str, object] = {"now": now, "lease_until": now + lease, "limit": limit}
    statement = _CLAIM_ANY
    if message_id is not None:
        statement = _CLAIM_MESSAGE
        params["message_id"] = message_id
    rows = session.execute(statement, params).all()
    session.commit()
    return [Claimed(*row) for row in rows]


def messages(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, Message]:
    rows = session.execute(
        select(
            OutboundMessage.id,
            OutboundMessage.resource_id,
            OutboundMessage.created_at,
            OutboundMessage.sender_domain,
            OutboundMessage.raw,
        ).where(OutboundMessage.id.in_(ids))
    ).all()
    return {row.id: Message(*row) for row in rows}


def _new_state(result: Result, accepted_at: datetime, now: datetime) -> tuple[str, datetime | None]:
    if result.reply.success:
        return DELIVERED, None
    if result.reply.permanent:
        return BOUNCED, None
    retry_at = next_attempt(result.recipient.attempts, accepted_at, now)
    return (DEFERRED, retry_at) if retry_at is not None else (RETRIES_EXHAUSTED, None)


def record(
    session: Session, results: list[Result], accepted: dict[uuid.UUID, datetime], now: datetime
) -> None:
    """Each recipient's new state, one event per change, suppressions for hard bounces; commits."""
    if not results:
        return
    updates: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    suppress: list[dict[str, object]] = []
    for result in results:
        state, retry_at = _new_state(result, accepted[result.recipient.message_id], now)
        updates.append(
            {"rid": result.recipient.id, "state": state, "next_attempt_at": retry_at,
             "last_reply": result.reply.text, "updated_at": now}
        )
        events.append(
            {"recipient_id": result.recipient.id, "at": now, "state": state, "reply": result.reply.text,
             "mx": result.mx, "webhook_pending": True}
        )
        if state == BOUNCED and is_hard_bounce(result.reply):
            suppress.append(
                {"resource_id": result.recipient.resource_id, "address": result.recipient.address.lower(),
                 "reason": result.reply.text, "created_at": now}
            )
    recipients = OutboundRecipient.__table__
    assert isinstance(recipients, Table)
    session.execute(
        update(recipients)
        .where(recipients.c.id == bindparam("rid"))
        .values(
            state=bindparam("state"),
            next_attempt_at=bindparam("next_attempt_at"),
            last_reply=bindparam("last_reply"),
            updated_at=bindparam("updated_at"),
        ),
        updates,
    )
    session.execute(insert(OutboundEvent), events)
    if suppress:
        session.execute(pg_insert(Suppression).on_conflict_do_nothing(), suppress)
    session.commit()


def due_count(session: Session, now: datetime) -> int:
    """How many recipients are waiting for an attempt now (the sweep's question)."""
    return int(
        session.scalar(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM outbound_recipients WHERE state IN ('queued', "
                "'deferred') AND next_attempt_at <= :now LIMIT 1000) AS due"
            ),
            {"now": now},
        )
        or 0
    )
