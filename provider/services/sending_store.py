"""What accepting outbound mail reads and writes in PostgreSQL, for a batch of messages at once.

`services.sending` decides; this module holds its statements. Each works on a whole batch
(`accept_many`), so the round trips and the synchronous commit of a busy process are shared by
the messages accepted together instead of paid by each (a group commit, as PostgreSQL's own WAL
writer does for concurrent commits).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Text, any_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..db import side_engine
from ..models import Domain, Resource, Suppression
from ..models.domain import SENDING
from ..outbound.outgoing import domain_of
from .usage import month_start

_TAKE = text(
    "INSERT INTO usage (resource_id, period, inbound, outbound) VALUES (:resource_id, :period, 0, :count) "
    "ON CONFLICT (resource_id, period) DO UPDATE SET outbound = usage.outbound + :count "
    "WHERE usage.outbound + :count <= :limit RETURNING outbound"
)
"""Counting and checking in one statement: concurrent sends can never overshoot the plan."""

STORE = text("""
WITH message AS (
    INSERT INTO outbound_messages (id, resource_id, created_at, source, sender, sender_domain, "to", cc,
        subject, message_id_header, tags, priority, test_mode, size, raw)
    SELECT m.id, m.resource_id, :now, m.source, m.sender, m.sender_domain,
        ARRAY(SELECT jsonb_array_elements_text(CAST(m."to" AS jsonb))),
        ARRAY(SELECT jsonb_array_elements_text(CAST(m.cc AS jsonb))),
        m.subject, m.message_id_header,
        ARRAY(SELECT jsonb_array_elements_text(CAST(m.tags AS jsonb))),
        m.priority, m.test_mode, m.size, m.raw
    FROM unnest(CAST(:ids AS uuid[]), CAST(:resource_ids AS text[]), CAST(:sources AS text[]),
        CAST(:senders AS text[]), CAST(:sender_domains AS text[]), CAST(:tos AS text[]),
        CAST(:ccs AS text[]), CAST(:subjects AS text[]), CAST(:message_id_headers AS text[]),
        CAST(:tag_lists AS text[]), CAST(:priorities AS text[]), CAST(:test_modes AS boolean[]),
        CAST(:sizes AS integer[]), CAST(:raws AS bytea[]))
        AS m(id, resource_id, source, sender, sender_domain, "to", cc, subject, message_id_header, tags,
             priority, test_mode, size, raw)
), recipients AS (
    INSERT INTO outbound_recipients (message_id, resource_id, address, domain, state, priority_rank,
        attempts, next_attempt_at, last_reply, updated_at)
    SELECT r.message_id, r.resource_id, r.address, r.domain, r.state, r.rank, 0,
        CASE WHEN r.state = 'queued' THEN CAST(:now AS timestamptz) END, r.reply, :now
    FROM unnest(CAST(:r_message_ids AS uuid[]), CAST(:r_resource_ids AS text[]),
        CAST(:r_addresses AS text[]), CAST(:r_domains AS text[]), CAST(:r_states AS text[]),
        CAST(:r_replies AS text[]), CAST(:r_ranks AS integer[]))
        WITH ORDINALITY AS r(message_id, resource_id, address, domain, state, reply, rank, n)
    ORDER BY r.n
    RETURNING id, state, last_reply
)
INSERT INTO outbound_events (recipient_id, at, state, reply, mx, webhook_pending)
SELECT id, :now, state, last_reply, NULL, state = 'suppressed' FROM recipients ORDER BY id
""")
"""A batch of messages, a row per recipient and each one's first event in one statement: one
round trip and one wait however many messages (psycopg's `executemany` of a statement per message
waited once per message, and under the web's gevent each wait sent the batch to the back of the
queue of greenlets). Lists (to, cc, tags) travel as JSON text: an array parameter cannot hold
lists of different lengths."""


@dataclass(frozen=True)
class StoredRow:
    """One message as STORE writes it."""

    id: uuid.UUID
    resource_id: str
    source: str
    sender: str
    sender_domain: str
    to: list[str]
    cc: list[str]
    subject: str | None
    message_id_header: str | None
    tags: list[str]
    priority: str
    rank: int
    test_mode: bool
    raw: bytes
    recipients: list[str]
    states: list[str]
    replies: list[str | None]


_ACCOUNTS = select(
    Resource.id,
    Resource.plan,
    Resource.active,
    select(func.array_agg(Suppression.address))
    .where(Suppression.resource_id == Resource.id,
           Suppression.address == any_(bindparam("addresses", type_=ARRAY(Text))))
    .scalar_subquery(),
    select(func.array_agg(Domain.name))
    .where(
        Domain.resource_id == Resource.id,
        Domain.kind == SENDING,
        Domain.verified_at.is_not(None),
        Domain.name == any_(bindparam("domains", type_=ARRAY(Text))),
    )
    .scalar_subquery(),
).where(Resource.id == any_(bindparam("ids", type_=ARRAY(Text))))
"""What accepting needs of each account of a batch, read fresh in one round trip: its plan,
whether it still serves (a cached authentication does not know of a deprovisioning), which of
the batch's recipients are on its suppression list and which candidate From domains it has
verified. A resource missing from the answer no longer exists."""


@dataclass(frozen=True)
class AccountFacts:
    plan: str
    active: bool
    suppressed: frozenset[str]
    """Lower-cased addresses, among those asked about."""
    verified_domains: frozenset[str]
    """Verified sending domains of the account, among those asked about."""


def read_accounts(
    session: Session, resource_ids: Iterable[str], addresses: Iterable[str], domains: Iterable[str]
) -> dict[str, AccountFacts]:
    rows = session.connection().execute(_ACCOUNTS, {
        "ids": sorted(set(resource_ids)),
        "addresses": sorted({address.lower() for address in addresses}),
        "domains": sorted(set(domains)),
    })
    return {
        row[0]: AccountFacts(row[1], bool(row[2]), frozenset(row[3] or ()), frozenset(row[4] or ()))
        for row in rows
    }


def _side_statement(engine: Engine, params: dict[str, object]) -> object | None:
    with side_engine(engine).connect() as connection:  # autocommit, without waiting for the disk
        return connection.execute(_TAKE, params).first()


def take_from_quota(session: Session, resource_id: str, count: int, limit: int, now: datetime) -> bool:
    """Take `count` from the account's count for this month if all of it fits under `limit`;
    whether it did. In a transaction of its own on a connection of the side pool
    (`db.side_engine`: never a second one from the caller's own pool, which can deadlock).

    Inside the messages' transaction the upsert held the account's usage row locked until that
    commit had waited for the disk, so concurrent sends of one account went one fsync at a time
    (about 115 messages/s here, whatever the cores). Its own transaction commits without waiting
    for the disk (the side pool's `synchronous_commit = off`) and frees the row at once.
    Nothing is lost by it: PostgreSQL flushes its log in order, so when the messages' own
    (synchronous) commit is durable, the earlier count is too. Messages whose commit then fails
    (PostgreSQL lost mid-request) have cost their account their count.
    """
    if count > limit:
        return False  # the insert of a first row of the month would not check the limit
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    params = {"resource_id": resource_id, "period": month_start(now), "count": count, "limit": limit}
    try:
        taken = _side_statement(engine, params)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        # A side connection that died in an outage the caller's own connection saw first (the
        # side pool is not pinged per use): once more, on a new connection.
        taken = _side_statement(engine, params)
    return taken is not None


def store(session: Session, rows: Sequence[StoredRow], now: datetime) -> None:
    """Insert the messages of `rows` with one statement, in the session's transaction (or, with
    `sending.commit_each_statement`, committed by it)."""
    if not rows:
        return
    recipients = [(row, n) for row in rows for n in range(len(row.recipients))]
    session.connection().execute(STORE, {
        "now": now,
        "ids": [row.id for row in rows],
        "resource_ids": [row.resource_id for row in rows],
        "sources": [row.source for row in rows],
        "senders": [row.sender for row in rows],
        "sender_domains": [row.sender_domain for row in rows],
        "tos": [json.dumps(row.to) for row in rows],
        "ccs": [json.dumps(row.cc) for row in rows],
        "subjects": [row.subject for row in rows],
        "message_id_headers": [row.message_id_header for row in rows],
        "tag_lists": [json.dumps(row.tags) for row in rows],
        "priorities": [row.priority for row in rows],
        "test_modes": [row.test_mode for row in rows],
        "sizes": [len(row.raw) for row in rows],
        "raws": [row.raw for row in rows],
        "r_message_ids": [row.id for row, _ in recipients],
        "r_resource_ids": [row.resource_id for row, _ in recipients],
        "r_addresses": [row.recipients[n] for row, n in recipients],
        "r_domains": [domain_of(row.recipients[n]) for row, n in recipients],
        "r_states": [row.states[n] for row, n in recipients],
        "r_replies": [row.replies[n] for row, n in recipients],
        "r_ranks": [row.rank for row, _ in recipients],
    })
