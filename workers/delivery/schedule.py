"""When a deferred recipient is tried again (spec/outbound.md: about 1 min, 5, 15, 1 h, 4 h, then
every 4 h until 48 h), and when it is given up.

Like Postfix's `maximal_queue_lifetime`, the limit counts from when the message was accepted, not
from the first failure, so a message never waits longer than the sender was promised.
"""

from __future__ import annotations

from datetime import datetime, timedelta

BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=4),
)
"""The wait after the 1st, 2nd, ... failed attempt; every later one waits the last value."""

MAX_QUEUE_LIFETIME = timedelta(hours=48)


def next_attempt(attempts: int, accepted_at: datetime, now: datetime) -> datetime | None:
    """The time of the next try after `attempts` failed ones, or None when the message has been
    queued for its lifetime (the recipient's retries are exhausted)."""
    wait = BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]
    when = now + wait
    if when - accepted_at > MAX_QUEUE_LIFETIME:
        # One last attempt exactly at the deadline, unless it has passed already.
        deadline = accepted_at + MAX_QUEUE_LIFETIME
        return deadline if deadline > now else None
    return when
