"""The overview chart's past days kept in Redis for `PAST_DAYS_TTL` (services/daily_counts.py says why)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date

from redis import RedisError

from .redis_pool import redis_connection
from .services.daily_counts import PAST_DAYS_TTL, series_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedisPastDaysCache:
    """services/daily_counts.py's `PastDaysCache` in Redis, by resource, first day and length."""

    redis_url: str

    def key(self, resource_id: str, first: date, days: int) -> str:
        return f"cloudmailin:daily_counts:{resource_id}:{first.isoformat()}:{days}"

    def get(self, key: str) -> dict[str, list[int]] | None:
        try:
            raw = redis_connection(self.redis_url).get(key)
        except RedisError as exc:
            log.warning("daily counts cache unreadable: %s", exc)
            return None
        if raw is None:
            return None
        kept: dict[str, list[int]] = json.loads(raw)
        return kept if sorted(kept) == sorted(series_names()) else None

    def put(self, key: str, series: dict[str, list[int]]) -> None:
        try:
            redis_connection(self.redis_url).set(key, json.dumps(series), ex=PAST_DAYS_TTL)
        except RedisError as exc:
            log.warning("daily counts cache not written: %s", exc)
