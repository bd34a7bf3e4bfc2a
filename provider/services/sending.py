"""Accepting an outbound message: the account's rules, then one transaction, then the wake-up.

Both doors (the JSON API and SMTP submission) call `accept` with an `Outgoing`. It checks what
needs the account (the sender's domain, the monthly count), stores the message with one row per
recipient, and has the delivery job enqueued after the commit. So a 202 or a `250 Queued` is
only ever said of a message PostgreSQL holds, and a lost job costs a sweep period, never the mail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine, Text, any_, bindparam, exists, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..db import side_engine
from ..models import Domain, OutboundMessage, Resource, Suppression
from ..models.base import utcnow
from ..models.domain import SENDING
from ..models.outbound import QUEUED, SUPPRESSED, TEST
from ..outbound.errors import AccountClosed, OutboundQuotaExceeded, SenderNotAllowed
from ..outbound.limits import PRIORITIES
from ..outbound.outgoing import Outgoing, domain_of
from ..plans import plan_named
from .usage import month_start

TEST_PLAN = "test"

_TAKE_ONE = text(
    "INSERT INTO usage (resource_id, period, inbound, outbound) VALUES (:resource_id, :period, 0, 1) "
    "ON CONFLICT (resource_id, period) DO UPDATE SET outbound = usage.outbound + 1 "
    "WHERE usage.outbound < :limit RETURNING outbound"
)
"""Counting and checking in one statement: concurrent sends can never overshoot the plan."""
_STORE = text("""
WITH message AS (
    INSERT INTO outbound_messages (id, resource_id, created_at, source, sender, sender_domain, "to", cc,
        subject, message_id_header, tags, priority, test_mode, size, raw)
    VALUES (:id, :resource_id, :now, :source, :sender, :sender_domain, CAST(:to AS text[]),
        CAST(:cc AS text[]), :subject, :message_id_header, CAST(:tags AS text[]), :priority, :test_mode,
        :size, :raw)
), recipients AS (
    INSERT INTO outbound_recipients (message_id, resource_id, address, domain, state, priority_rank,
        attempts, next_attempt_at, last_reply, updated_at)
    SELECT :id, :resource_id, r.address, r.domain, r.state, :rank, 0,
        CASE WHEN r.state = 'queued' THEN CAST(:now AS timestamptz) END, r.reply, :now
    FROM unnest(CAST(:addresses AS text[]), CAST(:domains AS text[]), CAST(:states AS text[]),
        CAST(:replies AS text[])) WITH ORDINALITY AS r(address, domain, state, reply, n)
    ORDER BY r.n
    RETURNING id, state, last_reply
)
INSERT INTO outbound_events (recipient_id, at, state, reply, mx, webhook_pending)
SELECT id, :now, state, last_reply, NULL, state = 'suppressed' FROM recipients ORDER BY id
""")
"""The message, a row per recipient and each one's first event in one round trip: the ORM's flush
of the same objects (three INSERTs, identity-map work) was the largest part of the API's CPU."""


@dataclass(frozen=True)
class SendingPolicy:
    verify_sending_domains: bool
    """Off in development (`SENDING_DOMAIN_VERIFICATION=off`): any From domain may send."""


def new_message_id() -> uuid.UUID:
    """A random (version 4) UUID, as CloudMailin's clients expect of a message id."""
    return uuid.uuid4()


class SendingAccount(Protocol):
    """Whom a message is sent for: a `Resource`, or the id a cached authentication knows
    (`credentials.CredentialCache`); `accept` reads the account's current facts itself."""

    @property
    def id(self) -> str: ...


@dataclass(frozen=True)
class AccountRef:
    id: str


def _sending_candidates(domain: str) -> list[str]:
    """`domain` and each parent of it but the top-level one: a verified sending domain of the
    resource may send as any of its subdomains."""
    labels = domain.lower().split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


_ACCOUNT = select(
    Resource.plan,
    Resource.active,
    select(func.array_agg(Suppression.address))
    .where(Suppression.resource_id == Resource.id,
           Suppression.address == any_(bindparam("addresses", type_=ARRAY(Text))))
    .scalar_subquery(),
    exists().where(
        Domain.resource_id == Resource.id,
        Domain.kind == SENDING,
        Domain.verified_at.is_not(None),
        Domain.name == any_(bindparam("domains", type_=ARRAY(Text))),
    ),
).where(Resource.id == bindparam("resource_id"))
"""What accepting needs of the account, read fresh in one round trip: its plan, whether it still
serves (a cached authentication does not know of a deprovisioning), which recipients are on its
suppression list and whether the From domain is one it may send from."""


@dataclass(frozen=True)
class _Facts:
    plan: str
    suppressed: frozenset[str]
    may_send: bool


def _account_facts(session: Session, resource_id: str, outgoing: Outgoing) -> _Facts:
    row = session.connection().execute(_ACCOUNT, {
        "resource_id": resource_id,
        "addresses": [address.lower() for address in outgoing.recipients],
        "domains": _sending_candidates(outgoing.sender_domain),
    }).first()
    if row is None or not row[1]:
        raise AccountClosed()
    return _Facts(row[0], frozenset(row[2] or ()), bool(row[3]))


def _side_statement(engine: Engine, params: dict[str, object]) -> object | None:
    with side_engine(engine).connect() as connection:  # autocommit, without waiting for the disk
        return connection.execute(_TAKE_ONE, params).first()


def _take_from_quota(session: Session, resource_id: str, plan_name: str, now: datetime) -> None:
    """One from the month's count, in a transaction of its own on a connection of the side pool
    (`db.side_engine`: never a second one from the request's own pool, which can deadlock).

    Inside the message's transaction the upsert held the account's usage row locked until that
    commit had waited for the disk, so concurrent sends of one account went one fsync at a time
    (about 115 messages/s here, whatever the cores). Its own transaction commits without waiting
    for the disk (the side pool's `synchronous_commit = off`) and frees the row at once.
    Nothing is lost by it: PostgreSQL flushes its log in order, so when the message's own
    (synchronous) commit is durable, the earlier count is too. A message whose commit then fails
    (PostgreSQL lost mid-request) has cost its account one from the count.
    """
    plan = plan_named(plan_name)
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    params = {"resource_id": resource_id, "period": month_start(now), "limit": plan.outbound_per_month}
    try:
        taken = _side_statement(engine, params)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        # A side connection that died in an outage the request's own connection saw first (the
        # side pool is not pinged per use): once more, on a new connection.
        taken = _side_statement(engine, params)
    if taken is None:
        raise OutboundQuotaExceeded(plan.name, plan.outbound_per_month)


def commit_each_statement(session: Session) -> None:
    """Have `session`'s statements commit one by one (autocommit), when nothing has run in it yet.

    What `accept` writes is one statement (`_STORE`) and what it reads before needs no snapshot
    of its own, so a transaction around them only added two round trips (BEGIN and COMMIT) to
    each message. The store's own commit is synchronous: durable when it returns. The caller
    still calls `session.commit()`, which sends nothing then but runs the after-commit hooks
    (the delivery job). A session already in a transaction keeps it (the same result, slower).
    """
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def accept(
    session: Session,
    policy: SendingPolicy,
    account: SendingAccount,
    outgoing: Outgoing,
    message_id: uuid.UUID,
    *,
    wake: Callable[[Session, OutboundMessage], None],
    now: datetime | None = None,
) -> OutboundMessage:
    """Store `outgoing` for delivery and return it; the caller commits (see also
    `commit_each_statement`).

    Raises AccountClosed when the account no longer serves (deprovisioned since it authenticated).
    The returned `OutboundMessage` is not in the session (its rows are written by one statement,
    `_STORE`): read its fields, and query the stored rows when more is needed.

    `wake(session, message)` is how the caller has delivery started after its commit (the
    worker's job, enqueued by the edge that owns the queue).
    """
    now = now or utcnow()
    facts = _account_facts(session, account.id, outgoing)
    test_mode = outgoing.test_mode or facts.plan == TEST_PLAN
    if policy.verify_sending_domains and not test_mode and not facts.may_send:
        raise SenderNotAllowed(outgoing.sender_domain)
    suppressed = facts.suppressed
    message = OutboundMessage(
        id=message_id,
        resource_id=account.id,
        created_at=now,
        source=outgoing.source,
        sender=outgoing.sender,
        sender_domain=outgoing.sender_domain,
        to=list(outgoing.to),
        cc=list(outgoing.cc),
        subject=outgoing.subject,
        message_id_header=outgoing.message_id_header,
        tags=list(outgoing.tags),
        priority=outgoing.priority,
        test_mode=test_mode,
        size=len(outgoing.raw),
        raw=outgoing.raw,
    )
    states: list[str] = []
    replies: list[str | None] = []
    for address in outgoing.recipients:
        if test_mode:
            state, reply = TEST, "Test mode: validated and recorded, not delivered"
        elif address.lower() in suppressed:
            state, reply = SUPPRESSED, "On the suppression list after a hard bounce; not attempted"
        else:
            state, reply = QUEUED, None
        states.append(state)
        replies.append(reply)
    # Core statements on the session's connection: the ORM's execute path (compile state,
    # events) cost more than the statements' own work here.
    if not test_mode:
        # Before the store: with `commit_each_statement` the store commits itself, and a refused
        # message must not be stored. A message whose store then fails (PostgreSQL lost in
        # between) has cost its account one from the count.
        _take_from_quota(session, account.id, facts.plan, now)
    session.connection().execute(
        _STORE,
        {
            "id": message_id, "resource_id": account.id, "now": now, "source": outgoing.source,
            "sender": outgoing.sender, "sender_domain": outgoing.sender_domain, "to": list(outgoing.to),
            "cc": list(outgoing.cc), "subject": outgoing.subject,
            "message_id_header": outgoing.message_id_header, "tags": list(outgoing.tags),
            "priority": outgoing.priority, "test_mode": test_mode, "size": len(outgoing.raw),
            "raw": outgoing.raw, "rank": PRIORITIES.index(outgoing.priority),
            "addresses": list(outgoing.recipients),
            "domains": [domain_of(address) for address in outgoing.recipients],
            "states": states, "replies": replies,
        },
    )
    if QUEUED in states:
        wake(session, message)
    return message
