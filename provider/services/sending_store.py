"""What accepting outbound mail reads and writes in PostgreSQL, for a batch of messages at once.

`services.sending` decides; this module holds its statements. Each works on a whole batch
(`accept_many`), so the round trips and the synchronous commit of a busy process are shared by
the messages accepted together instead of paid by each (a group commit, as PostgreSQL's own WAL
writer does for concurrent commits).

The statements are in psycopg's own placeholders (`%(name)b`, PostgreSQL's binary format), run
through `exec_driver_sql` without SQLAlchemy's compilation, and a batch travels in a few
parameters: its rows as one JSON document (`jsonb_to_recordset` unpacks it), the messages' bytes
as one `bytea[]`. One array parameter per column (two dozen) cost each batch psycopg's choosing of
a dumper per list (0.2 to 0.4 ms of the web's CPU whatever the batch's size), and in text format
(SQLAlchemy's `text()` binds) each message's bytes went as a hex literal inside an array literal:
escaped, quoted, then decoded by PostgreSQL. Measured with bench/outbound.py, the two together
were about a fifth of the web's and PostgreSQL's CPU per accepted message.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..db import side_engine
from ..models import Resource
from ..models.domain import SENDING
from ..outbound.outgoing import domain_of
from ..plans import PLANS, TEST_PLAN
from .usage import month_start

_PLAN_LIMITS = json.dumps([{"name": plan.name, "outbound_limit": plan.outbound_per_month}
                           for plan in PLANS.values()])
"""The catalogue's monthly outbound limits by plan name, as `_READ_AND_COUNT` takes them."""
_ACTIVE = str(Resource.active.compile(compile_kwargs={"literal_binds": True}))
"""`Resource.active` as SQL, so the statement below holds no second spelling of it."""


STORE = """
WITH message AS (
    INSERT INTO outbound_messages (id, resource_id, created_at, source, sender, sender_domain, "to", cc,
        subject, message_id_header, tags, priority, test_mode, size, raw)
    SELECT m.id, m.resource_id, %(now)b, m.source, m.sender, m.sender_domain, m."to", m.cc,
        m.subject, m.message_id_header, m.tags, m.priority, m.test_mode, m.size,
        (CAST(%(raws)b AS bytea[]))[m.n]
    FROM jsonb_to_recordset(CAST(%(messages)b AS jsonb))
        AS m(id uuid, resource_id text, source text, sender text, sender_domain text, "to" text[],
             cc text[], subject text, message_id_header text, tags text[], priority text,
             test_mode boolean, size integer, n integer)
), recipients AS (
    INSERT INTO outbound_recipients (message_id, resource_id, address, domain, state, priority_rank,
        attempts, next_attempt_at, last_reply, updated_at)
    SELECT r.message_id, r.resource_id, r.address, r.domain, r.state, r.rank, 0,
        CASE WHEN r.state = 'queued' THEN CAST(%(now)b AS timestamptz) END, r.reply, %(now)b
    FROM jsonb_to_recordset(CAST(%(recipients)b AS jsonb))
        AS r(message_id uuid, resource_id text, address text, domain text, state text, reply text,
             rank integer, n integer)
    ORDER BY r.n
    RETURNING id, state, last_reply
)
INSERT INTO outbound_events (recipient_id, at, state, reply, mx, webhook_pending)
SELECT id, %(now)b, state, last_reply, NULL, state = 'suppressed' FROM recipients ORDER BY id
"""
"""A batch of messages, a row per recipient and each one's first event in one statement: one
round trip and one wait however many messages (psycopg's `executemany` of a statement per message
waited once per message, and under the web's gevent each wait sent the batch to the back of the
queue of greenlets). `n` is a message's place in `raws` (1-based) and a recipient's in the
batch, which orders the recipients' ids and so their events."""


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


_READ_AND_COUNT = f"""
WITH asked AS (
    SELECT * FROM jsonb_to_recordset(CAST(%(accounts)b AS jsonb)) AS a(resource_id text, count integer)
), plans AS (
    SELECT * FROM jsonb_to_recordset(CAST(%(plans)b AS jsonb)) AS p(name text, outbound_limit bigint)
), account AS (
    SELECT resources.id, resources.plan, {_ACTIVE} AS active, a.count, p.outbound_limit,
        (SELECT array_agg(s.address) FROM suppressions s
         WHERE s.resource_id = resources.id
           AND s.address IN (SELECT jsonb_array_elements_text(CAST(%(addresses)b AS jsonb)))) AS suppressed,
        (SELECT array_agg(d.name) FROM domains d
         WHERE d.resource_id = resources.id AND d.kind = %(sending)b AND d.verified_at IS NOT NULL
           AND d.name IN (SELECT jsonb_array_elements_text(CAST(%(domains)b AS jsonb)))) AS verified
    FROM resources
    JOIN asked a ON a.resource_id = resources.id
    LEFT JOIN plans p ON p.name = resources.plan
), counted AS (
    INSERT INTO usage (resource_id, period, inbound, outbound)
    SELECT id, %(period)b, 0, count FROM account
    WHERE active AND plan IS DISTINCT FROM %(test_plan)b AND count > 0 AND count <= outbound_limit
    ON CONFLICT (resource_id, period) DO UPDATE SET outbound = usage.outbound + EXCLUDED.outbound
    WHERE usage.outbound + EXCLUDED.outbound
        <= (SELECT outbound_limit FROM account WHERE account.id = usage.resource_id)
    RETURNING resource_id
)
SELECT id, plan, active, suppressed, verified, id IN (SELECT resource_id FROM counted) FROM account
"""  # noqa: S608 - the one interpolation is `_ACTIVE`, the model's own SQL, fixed at import
"""What accepting needs of each account of a batch, read fresh, and the batch's count taken from
each account's month, in one round trip on the side pool (see `take_from_quota` for why there).

Read: the plan, whether the account still serves (`Resource.active`: a cached authentication
does not know of a deprovisioning), which of the batch's recipients are on its suppression list,
which candidate From domains it has verified; a resource missing from the answer no longer
exists. Counted, for an account that serves and is not on the test plan: `counts` (its messages
not in test mode) if all of them fit under its plan's limit (`plan_limits`, the catalogue's, by
the name provisioning stores, as `retention` reads it); else nothing, and the caller takes one
at a time (an unknown plan name then raises `UnknownPlan`, as before). A
message the caller then refuses (a From domain not verified) is given back (`give_back`). As a
separate statement this read cost every batch one more round trip, and under the web's gevent
workers each round trip is a turn at the back of the queue of greenlets."""


@dataclass(frozen=True)
class AccountFacts:
    plan: str
    active: bool
    suppressed: frozenset[str]
    """Lower-cased addresses, among those asked about."""
    verified_domains: frozenset[str]
    """Verified sending domains of the account, among those asked about."""
    counted: bool
    """Whether the count asked for was taken from the month's."""


def read_and_count(
    session: Session, counts: dict[str, int], addresses: Iterable[str], domains: Iterable[str],
    now: datetime,
) -> dict[str, AccountFacts]:
    """The facts of each account of `counts` (resource id -> messages to count) and whether
    its count was taken."""
    params = {
        "accounts": json.dumps([{"resource_id": key, "count": count} for key, count in counts.items()]),
        "plans": _PLAN_LIMITS, "test_plan": TEST_PLAN, "sending": SENDING, "period": month_start(now),
        "addresses": json.dumps(sorted({address.lower() for address in addresses})),
        "domains": json.dumps(sorted(set(domains))),
    }
    rows = _on_side_connection(session, _READ_AND_COUNT, params)
    return {
        row[0]: AccountFacts(row[1], bool(row[2]), frozenset(row[3] or ()), frozenset(row[4] or ()),
                             bool(row[5]))
        for row in rows
    }


_GIVE_BACK = (
    "UPDATE usage SET outbound = greatest(outbound - %(count)b, 0) "
    "WHERE resource_id = %(resource_id)b AND period = %(period)b"
)


def give_back(session: Session, resource_id: str, count: int, now: datetime) -> None:
    """Return `count` taken by `read_and_count` for messages refused after all."""
    _on_side_connection(session, _GIVE_BACK, {
        "resource_id": resource_id, "count": count, "period": month_start(now)})


def _on_side_connection(session: Session, statement: str, params: dict[str, Any]) -> list[Any]:
    """`statement` on a connection of the side pool beside `session`'s engine (autocommit,
    without waiting for the disk): its rows, read before the connection goes back."""
    bind = session.get_bind()
    engine = side_engine(bind if isinstance(bind, Engine) else bind.engine)

    def run() -> list[Any]:
        with engine.connect() as connection:
            result = connection.exec_driver_sql(statement, params)
            return list(result.all()) if result.returns_rows else []

    try:
        return run()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        # A side connection that died in an outage the caller's own connection saw first (the
        # side pool is not pinged per use): once more, on a new connection.
        return run()


_TAKE = (
    "INSERT INTO usage (resource_id, period, inbound, outbound) "
    "VALUES (%(resource_id)b, %(period)b, 0, %(count)b) "
    "ON CONFLICT (resource_id, period) DO UPDATE SET outbound = usage.outbound + %(count)b "
    "WHERE usage.outbound + %(count)b <= %(limit)b RETURNING outbound"
)
"""Counting and checking in one statement: concurrent sends can never overshoot the plan."""


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
    params = {"resource_id": resource_id, "period": month_start(now), "count": count, "limit": limit}
    return bool(_on_side_connection(session, _TAKE, params))


def store(session: Session, rows: Sequence[StoredRow], now: datetime) -> None:
    """Insert the messages of `rows` with one statement, in the session's transaction (or, with
    `sending.commit_each_statement`, committed by it)."""
    if not rows:
        return
    messages = [
        {"id": str(row.id), "resource_id": row.resource_id, "source": row.source, "sender": row.sender,
         "sender_domain": row.sender_domain, "to": row.to, "cc": row.cc, "subject": row.subject,
         "message_id_header": row.message_id_header, "tags": row.tags, "priority": row.priority,
         "test_mode": row.test_mode, "size": len(row.raw), "n": n}
        for n, row in enumerate(rows, 1)
    ]
    each = ((row, *fields) for row in rows
            for fields in zip(row.recipients, row.states, row.replies, strict=True))
    recipients = [
        {"message_id": str(row.id), "resource_id": row.resource_id, "address": address,
         "domain": domain_of(address), "state": state, "reply": reply, "rank": row.rank, "n": n}
        for n, (row, address, state, reply) in enumerate(each, 1)
    ]
    session.connection().exec_driver_sql(STORE, {
        "now": now, "messages": json.dumps(messages), "recipients": json.dumps(recipients),
        "raws": [row.raw for row in rows],
    })
