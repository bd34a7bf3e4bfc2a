"""The overview's chart over a long history: past days counted once and kept in Redis, today live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from provider.daily_counts_cache import RedisPastDaysCache
from provider.services.daily_counts import daily_counts
from provider.settings import Settings

from ..outbound.conftest import new_account
from .conftest import inbound


def test_past_days_are_counted_once_and_kept_while_today_counts_every_time(
    db_session: Session, settings: Settings
) -> None:
    resource_id = new_account(db_session, settings).resource_id
    now = datetime.now(UTC)
    cache = RedisPastDaysCache(settings.redis_url)
    inbound(db_session, resource_id, subject="yesterday", when=now - timedelta(days=1))
    first = daily_counts(db_session, resource_id, days=30, now=now, cache=cache)
    assert first.series["inbound accepted"][-2:] == [1, 0]

    inbound(db_session, resource_id, subject="late for yesterday", when=now - timedelta(days=1))
    inbound(db_session, resource_id, subject="today", status="404", when=now)
    second = daily_counts(db_session, resource_id, days=30, now=now, cache=cache)

    assert second.series["inbound accepted"][-2:] == [1, 0]  # yesterday as counted first
    assert second.series["inbound rejected"][-1] == 1  # today's mail shows at once
    assert daily_counts(db_session, resource_id, days=30, now=now).series["inbound accepted"][-2] == 2


def test_without_redis_the_chart_is_counted_from_the_history(db_session: Session, settings: Settings) -> None:
    resource_id = new_account(db_session, settings).resource_id
    now = datetime.now(UTC)
    inbound(db_session, resource_id, subject="yesterday", when=now - timedelta(days=1))
    unreachable = RedisPastDaysCache("redis://127.0.0.1:9/0")  # the discard port: nothing answers
    counts = daily_counts(db_session, resource_id, days=30, now=now, cache=unreachable)
    assert counts.series["inbound accepted"][-2] == 1
