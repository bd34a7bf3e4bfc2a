"""History kept for the plan's `history_days`, then deleted (DESIGN.md "Plans"; issue 10).

Deletion runs in small batches, each its own short transaction, so the periodic sweep never holds
a lock over a whole table or a long-running statement against the edge's inserts; each batch finds
its rows through the (resource_id, time) indexes. The monthly usage counters are a table of their
own and are kept: quotas and the dashboard's usage do not depend on the history still being there.
Outbound messages go with their recipients and events (ON DELETE CASCADE) once every recipient is
final: a message still being retried is never deleted under its delivery worker.
"""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from ..plans import DEFAULT_PLAN, PLANS

BATCH = 1000
TIME_BUDGET = 5.0
"""Seconds one sweep spends deleting; what is left goes in the next sweep."""

_INBOUND = text("""
DELETE FROM inbound_messages WHERE id IN (
    SELECT m.id FROM resources r
    LEFT JOIN unnest(CAST(:plans AS text[]), CAST(:days AS int[])) AS p(plan, days) ON p.plan = r.plan
    JOIN inbound_messages m ON m.resource_id = r.id
    WHERE m.received_at < :now - make_interval(days => COALESCE(p.days, :default_days))
    LIMIT :batch
)""")

_OUTBOUND = text("""
DELETE FROM outbound_messages WHERE id IN (
    SELECT o.id FROM resources r
    LEFT JOIN unnest(CAST(:plans AS text[]), CAST(:days AS int[])) AS p(plan, days) ON p.plan = r.plan
    JOIN outbound_messages o ON o.resource_id = r.id
    WHERE o.created_at < :now - make_interval(days => COALESCE(p.days, :default_days))
      AND NOT EXISTS (SELECT 1 FROM outbound_recipients x
                      WHERE x.message_id = o.id AND x.state IN ('queued', 'deferred'))
    LIMIT :batch
)""")


def purge_expired_history(
    session: Session, now: datetime, *, batch: int = BATCH, budget: float = TIME_BUDGET
) -> dict[str, int]:
    """Delete history older than each resource's plan keeps it; commits every batch."""
    deleted = {"inbound": 0, "outbound": 0}
    params = {
        "now": now,
        "batch": batch,
        "plans": [plan.name for plan in PLANS.values()],
        "days": [plan.history_days for plan in PLANS.values()],
        "default_days": PLANS[DEFAULT_PLAN].history_days,
    }
    deadline = time.monotonic() + budget
    for kind, statement in (("inbound", _INBOUND), ("outbound", _OUTBOUND)):
        while time.monotonic() < deadline:
            result = session.execute(statement, params)
            session.commit()
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted[kind] += count
            if count < batch:
                break
    return deleted
