"""Messages per day for the overview's chart: inbound by outcome, outbound by final state.

Each direction is one statement grouped by UTC day (and outcome or state) over the last `days`
days, starting from the resource's history index, so the chart costs two small aggregate reads
however long the history is. Days with nothing are filled with zeros here, so the chart has one
point per day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, Date, cast, func, select
from sqlalchemy.orm import Session

from ..models import InboundMessage, OutboundRecipient
from ..models.outbound import BOUNCED, DELIVERED
from .outcomes import OUTCOMES, outcome_column

OUTBOUND_SERIES = (DELIVERED, BOUNCED)


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


def daily_counts(session: Session, resource_id: str, *, days: int, now: datetime) -> DailyCounts:
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time(), tzinfo=UTC)
    calendar = [first + timedelta(days=n) for n in range(days)]
    index = {day: n for n, day in enumerate(calendar)}
    series: dict[str, list[int]] = {}
    for outcome in OUTCOMES:
        series[f"inbound {outcome}"] = [0] * days
    for state in OUTBOUND_SERIES:
        series[f"outbound {state}"] = [0] * days

    outcome_of_row = outcome_column()
    inbound_day = _utc_day(InboundMessage.received_at)
    inbound = session.execute(
        select(inbound_day, outcome_of_row, func.count())
        .where(InboundMessage.resource_id == resource_id, InboundMessage.received_at >= since)
        .group_by(inbound_day, outcome_of_row)
    )
    for day, name, count in inbound:
        if day in index:
            series[f"inbound {name}"][index[day]] = count

    outbound_day = _utc_day(OutboundRecipient.updated_at)
    outbound = session.execute(
        select(outbound_day, OutboundRecipient.state, func.count())
        .where(
            OutboundRecipient.resource_id == resource_id,
            OutboundRecipient.state.in_(OUTBOUND_SERIES),
            OutboundRecipient.updated_at >= since,
        )
        .group_by(outbound_day, OutboundRecipient.state)
    )
    for day, state, count in outbound:
        if day in index:
            series[f"outbound {state}"][index[day]] = count
    return DailyCounts(calendar, series)
