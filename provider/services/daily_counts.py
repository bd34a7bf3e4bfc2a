"""Messages per day for the overview's chart: inbound by outcome, outbound by final state.

Each direction is one statement grouped by UTC day (and outcome or state), starting from the
resource's history index. Days with nothing are filled with zeros here, so the chart has one
point per day.

Over a long history the 29 days before today are most of the work (a third of a million rows
for an account with a million over 90 days: a second, cold), and they do not change once over:
mail is recorded as it arrives. So with a `cache` (a `PastDaysCache`: Redis in the web process)
the past days are counted once and kept for `PAST_DAYS_TTL`, and only today is counted on each
view. What may still change a past day (a re-send's result landing after midnight, the retention
sweep) shows within that time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, Date, cast, func, select
from sqlalchemy.orm import Session

from ..models import InboundMessage, OutboundRecipient
from ..models.outbound import BOUNCED, DELIVERED
from .outcomes import OUTCOMES, outcome_column

OUTBOUND_SERIES = (DELIVERED, BOUNCED)
PAST_DAYS_TTL = timedelta(hours=1)


@dataclass(frozen=True)
class DailyCounts:
    days: list[date]
    series: dict[str, list[int]]
    """Name (`inbound accepted`, `outbound bounced`, ...) to one count per day of `days`."""

    @property
    def total(self) -> int:
        return sum(sum(counts) for counts in self.series.values())

    def as_json(self) -> dict[str, object]:
        return {"days": [day.isoformat() for day in self.days], "series": self.series}


def _utc_day(column: ColumnElement[datetime] | object) -> ColumnElement[date]:
    return cast(func.timezone("UTC", column), Date)


def _count(
    session: Session, resource_id: str, since: datetime, until: datetime | None, first: date, days: int
) -> dict[str, list[int]]:
    """Both directions' counts per day from `since` to `until` (open-ended: None), on a calendar
    of `days` days from `first`."""
    series = {name: [0] * days for name in series_names()}
    outcome_of_row = outcome_column()
    inbound_day = _utc_day(InboundMessage.received_at)
    inbound_query = (
        select(inbound_day, outcome_of_row, func.count())
        .where(InboundMessage.resource_id == resource_id, InboundMessage.received_at >= since)
        .group_by(inbound_day, outcome_of_row)
    )
    if until is not None:
        inbound_query = inbound_query.where(InboundMessage.received_at < until)
    for day, name, count in session.execute(inbound_query):
        if 0 <= (day - first).days < days:
            series[f"inbound {name}"][(day - first).days] = count

    outbound_day = _utc_day(OutboundRecipient.updated_at)
    outbound_query = (
        select(outbound_day, OutboundRecipient.state, func.count())
        .where(
            OutboundRecipient.resource_id == resource_id,
            OutboundRecipient.state.in_(OUTBOUND_SERIES),
            OutboundRecipient.updated_at >= since,
        )
        .group_by(outbound_day, OutboundRecipient.state)
    )
    if until is not None:
        outbound_query = outbound_query.where(OutboundRecipient.updated_at < until)
    for day, state, count in session.execute(outbound_query):
        if 0 <= (day - first).days < days:
            series[f"outbound {state}"][(day - first).days] = count
    return series


class PastDaysCache(Protocol):
    """Where the past days' counts are kept between views (provider/daily_counts_cache.py keeps
    them in Redis). A cache that cannot be read answers None, and one that cannot be written
    forgets: the counts are then made from the history, as without a cache."""

    def key(self, resource_id: str, first: date, days: int) -> str: ...

    def get(self, key: str) -> dict[str, list[int]] | None: ...

    def put(self, key: str, series: dict[str, list[int]]) -> None: ...


def series_names() -> list[str]:
    return [f"inbound {outcome}" for outcome in OUTCOMES] + [f"outbound {state}" for state in OUTBOUND_SERIES]


def daily_counts(
    session: Session, resource_id: str, *, days: int, now: datetime, cache: PastDaysCache | None = None
) -> DailyCounts:
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time(), tzinfo=UTC)
    calendar = [first + timedelta(days=n) for n in range(days)]
    if cache is None:
        return DailyCounts(calendar, _count(session, resource_id, since, None, first, days))
    midnight = datetime.combine(today, time(), tzinfo=UTC)
    key = cache.key(resource_id, first, days)
    past = cache.get(key)
    if past is None:
        past = _count(session, resource_id, since, midnight, first, days)
        cache.put(key, past)
    current = _count(session, resource_id, midnight, None, first, days)
    series = {name: [a + b for a, b in zip(past[name], current[name], strict=True)] for name in past}
    return DailyCounts(calendar, series)
