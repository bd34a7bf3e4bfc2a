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
from typing import Any

from sqlalchemy import Engine, TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..db import side_engine
from ..models import Resource
from ..models.domain import SENDING
from ..outbound.outgoing import domain_of
from ..plans import PLANS, TEST_PLAN
from .usage import month_start

_PLAN_NAMES = list(PLANS)
_PLAN_LIMITS = [plan.outbound_per_month for plan in PLANS.values()]
_ACTIVE = str(Resource.active.compile(compile_kwargs={"literal_binds": True}))
"""`Resource.active` as SQL, so the statement below holds no second spelling of it."""

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


_READ_AND_COUNT = text(f"""
WITH asked AS (
    SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:counts AS integer[])) AS a(resource_id, count)
), plans AS (
    SELECT * FROM unnest(CAST(:plan_names AS text[]), CAST(:plan_limits AS bigint[]))
        AS p(name, outbound_limit)
), account AS (
    SELECT resources.id, resources.plan, {_ACTIVE} AS active, a.count, p.outbound_limit,
        (SELECT array_agg(s.address) FROM suppressions s
         WHERE s.resource_id = resources.id AND s.address = ANY(CAST(:addresses AS text[]))) AS suppressed,
        (SELECT array_agg(d.name) FROM domains d
         WHERE d.resource_id = resources.id AND d.kind = :sending AND d.verified_at IS NOT NULL
           AND d.name = ANY(CAST(:domains AS text[]))) AS verified
    FROM resources
    JOIN asked a ON a.resource_id = resources.id
    LEFT JOIN plans p ON p.name = resources.plan
), counted AS (
    INSERT INTO usage (resource_id, period, inbound, outbound)
    SELECT id, :period, 0, count FROM account
    WHERE active AND plan IS DISTINCT FROM :test_plan AND count > 0 AND count <= outbound_limit
    ON CONFLICT (resource_id, period) DO UPDATE SET outbound = usage.outbound + EXCLUDED.outbound
    WHERE usage.outbound + EXCLUDED.outbound
        <= (SELECT outbound_limit FROM account WHERE account.id = usage.resource_id)
    RETURNING resource_id
)
SELECT id, plan, active, suppressed, verified, id IN (SELECT resource_id FROM counted) FROM account
""")  # noqa: S608 - the one interpolation is `_ACTIVE`, the model's own SQL, fixed at import
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
        "ids": list(counts), "counts": list(counts.values()),
        "plan_names": _PLAN_NAMES, "plan_limits": _PLAN_LIMITS, "test_plan": TEST_PLAN,
        "sending": SENDING, "period": month_start(now),
        "addresses": sorted({address.lower() for address in addresses}),
        "domains": sorted(set(domains)),
    }
    rows = _on_side_connection(session, _READ_AND_COUNT, params)
    return {
        row[0]: AccountFacts(row[1], bool(row[2]), frozenset(row[3] or ()), frozenset(row[4] or ()),
                             bool(row[5]))
        for row in rows
    }


_GIVE_BACK = text(
    "UPDATE usage SET outbound = greatest(outbound - :count, 0) "
    "WHERE resource_id = :resource_id AND period = :period"
)


def give_back(session: Session, resource_id: str, count: int, now: datetime) -> None:
    """Return `count` taken by `read_and_count` for messages refused after all."""
    _on_side_connection(session, _GIVE_BACK, {
        "resource_id": resource_id, "count": count, "period": month_start(now)})


def _on_side_connection(session: Session, statement: TextClause, params: dict[str, Any]) -> list[Any]:
    """`statement` on a connection of the side pool beside `session`'s engine (autocommit,
    without waiting for the disk): its rows, read before the connection goes back."""
    bind = session.get_bind()
    engine = side_engine(bind if isinstance(bind, Engine) else bind.engine)

    def run() -> list[Any]:
        with engine.connect() as connection:
            result = connection.execute(statement, params)
            return list(result.all()) if result.returns_rows else []

    try:
        return run()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        # A side connection that died in an outage the caller's own connection saw first (the
        # side pool is not pinged per use): once more, on a new connection.
        return run()


_TAKE = text(
    "INSERT INTO usage (resource_id, period, inbound, outbound) VALUES (:resource_id, :period, 0, :count) "
    "ON CONFLICT (resource_id, period) DO UPDATE SET outbound = usage.outbound + :count "
    "WHERE usage.outbound + :count <= :limit RETURNING outbound"
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
