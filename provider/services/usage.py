"""Monthly message counters (the Usage table), read at RCPT and bumped after a delivery.

One row per resource and calendar month (UTC), so a quota check is one primary-key read instead
of a count over the history. Counting is an atomic upsert (INSERT ... ON CONFLICT DO UPDATE),
so concurrent SMTP sessions never lose an increment and never race to create the row.

What counts: a message the target accepted (2xx). Refused or deferred attempts do not, because
the sending MTA retries them and one message must not be counted once per attempt. The check at
RCPT and the increment after the POST are not one transaction, so sessions running at the same
moment can each pass the check and overshoot the quota by at most the number of concurrent
sessions for that resource; that is the price of not serialising deliveries on a lock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session

from ..models import Usage
from ..plans import Plan


def month_start(when: datetime) -> date:
    """The `period` key of `when`'s month; naive datetimes are taken as UTC."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.date().replace(day=1)


_COUNT_INBOUND = text(
    "INSERT INTO usage (resource_id, period, inbound, outbound) "
    "VALUES (:resource_id, :period, :messages, 0) "
    "ON CONFLICT (resource_id, period) DO UPDATE SET inbound = usage.inbound + EXCLUDED.inbound"
)


def count_inbound_params(resource_id: str, when: datetime, messages: int) -> dict[str, object]:
    return {"resource_id": resource_id, "period": month_start(when), "messages": messages}


@cache
def count_inbound_sql() -> str:
    """The same upsert for a psycopg connection of its own (the SMTP edge's history writer)."""
    return str(_COUNT_INBOUND.compile(dialect=psycopg_dialect()))



def quota_reached(plan: Plan, used: int) -> bool:
    return used >= plan.inbound_per_month


def month_usage(session: Session, resource_id: str, when: datetime) -> tuple[int, int]:
    """The month's (inbound, outbound) counters, for the dashboard's plan usage."""
    row = session.execute(
        select(Usage.inbound, Usage.outbound).where(
            Usage.resource_id == resource_id, Usage.period == month_start(when)
        )
    ).first()
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)
