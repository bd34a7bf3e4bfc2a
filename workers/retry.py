"""How jobs try again: each job carries its attempt number and reschedules itself.

RQ's own `Retry` would re-run a failed job, but these jobs must act when they give up (post the
deprovision action, drop log lines with a warning), and they honour Heroku's Retry-After. So a
job that hits a temporary failure enqueues its successor with `attempt + 1` after the delay the
policy gives, and treats "no delay left" as giving up. The successor runs on RQ's scheduler,
which `python -m workers` starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rq import Queue

from provider.settings import Settings
from provider.tasks import redis_connection


@dataclass(frozen=True)
class Backoff:
    """`delays[n]` seconds pass between attempt n and attempt n + 1; after the last, give up."""

    delays: tuple[float, ...]
    # A Retry-After longer than this is not waited for in full; the next attempt will see.
    max_delay: float = 3600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> timedelta | None:
        if attempt < 0 or attempt >= len(self.delays):
            return None
        seconds = self.delays[attempt]
        if retry_after is not None:
            seconds = max(seconds, min(retry_after, self.max_delay))
        return timedelta(seconds=seconds)

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1


def schedule(settings: Settings, queue: str, func: str, args: tuple[Any, ...], delay: timedelta) -> None:
    """Enqueue `func(*args)` to run after `delay` (RQ's scheduled job registry)."""
    Queue(queue, connection=redis_connection(settings.redis_url)).enqueue_in(delay, func, *args)
