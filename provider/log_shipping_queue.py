"""The Redis side of app log shipping (services/applog.py writes the lines; this gets them to a worker).

Asking is one Redis round trip (`request_shipping`): the resource id joins a set that one
dispatch job at a time turns into `workers.jobs.logs.ship_logs(resource_id)` jobs. A Redis mark
per resource makes a burst of lines one shipping job; the job clears the mark when it has
shipped everything. Nothing here raises into the operation that logged: the lines are safe in
PostgreSQL, and the sweep asks again for lines left unshipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import TypeVar

from redis import Redis, RedisError
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline
from rq import Queue

from provider.jobs import DISPATCH_SHIPPING_JOB, LOGS_QUEUE, SHIP_LOGS_JOB, Job
from provider.redis_pool import redis_connection
from provider.tasks import enqueue_once
from provider.tasks import milliseconds as _ms

log = logging.getLogger(__name__)

_Pipe = TypeVar("_Pipe", Pipeline, AsyncPipeline)

# Resource ids whose lines wait for a SHIP_LOGS_JOB, and the mark of a dispatch job queued or running.
PENDING_KEY = "cloudmailin:ship_logs:pending"
DISPATCH_MARK_KEY = "cloudmailin:ship_logs:dispatch"
# How long a pending-job mark lives on its own: if its job is lost (worker killed), a later line
# or the sweep enqueues a new one after this.
MARK_TTL = timedelta(minutes=10)


def mark_key(resource_id: str) -> str:
    return f"cloudmailin:ship_logs:{resource_id}"


def request_shipping(redis_url: str, *resource_ids: str) -> bool:
    """Ask for the resources' unshipped lines to be shipped, in one Redis round trip.

    This runs on the hot paths (every provision, every inbound message), where enqueueing an RQ
    job per resource cost more web-process CPU than the provisioning INSERT did. So the ids join a
    set, and only the request that finds no dispatch under way enqueues one `DISPATCH_SHIPPING_JOB`; the
    worker turns the set into per-resource `SHIP_LOGS_JOB`s (`enqueue_shipping`). Returns whether
    this call enqueued the dispatch job; never raises: the lines are safe in PostgreSQL, and the
    sweep asks again for lines left unshipped.
    """
    ids = sorted(set(resource_ids))
    if not ids:
        return False
    try:
        redis = redis_connection(redis_url)
        pipe = redis.pipeline(transaction=False)
        _, dispatching = _ask(pipe, ids).execute()
        return bool(dispatching) and _dispatch(redis_url)
    except RedisError:
        log.warning("could not request app log shipping for %d resources", len(ids), exc_info=True)
        return False


async def request_shipping_async(
    redis: AsyncRedis, redis_url: str, resource_ids: Iterable[str], dispatcher: Redis | None = None
) -> bool:
    """`request_shipping` for the SMTP edge's event loop (redis.asyncio, no thread hop); the
    dispatch job is enqueued through `dispatcher` (a client with the edge's timeouts) if given."""
    ids = sorted(set(resource_ids))
    if not ids:
        return False
    try:
        _, dispatching = await _ask(redis.pipeline(transaction=False), ids).execute()
        # Once per burst: RQ's enqueue is synchronous, so it runs in a thread.
        return bool(dispatching) and await asyncio.to_thread(_dispatch, redis_url, dispatcher)
    except RedisError:
        log.warning("could not request app log shipping for %d resources", len(ids), exc_info=True)
        return False


def _ask(pipe: _Pipe, ids: list[str]) -> _Pipe:
    pipe.sadd(PENDING_KEY, *ids)
    pipe.set(DISPATCH_MARK_KEY, "1", nx=True, px=_ms(MARK_TTL))
    return pipe


def _dispatch(redis_url: str, redis: Redis | None = None) -> bool:
    """Enqueue the dispatch job for the mark this process just took."""
    redis = redis or redis_connection(redis_url)
    try:
        Queue(LOGS_QUEUE, connection=redis).enqueue(DISPATCH_SHIPPING_JOB)
    except RedisError:
        redis.delete(DISPATCH_MARK_KEY)  # so the next line tries again instead of waiting out the TTL
        raise
    return True


def take_pending(redis_url: str, count: int) -> list[str]:
    """Up to `count` resource ids that asked for shipping (the dispatch job's side)."""
    taken = redis_connection(redis_url).spop(PENDING_KEY, count)
    return [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in taken or []]


def end_dispatch(redis_url: str) -> bool:
    """Give up the dispatch mark once the set looked empty; True if requests arrived meanwhile
    and this dispatch took the mark back to serve them. A request between the last `take_pending`
    and the release saw the mark and enqueued nothing, so the set is looked at once more."""
    redis = redis_connection(redis_url)
    redis.delete(DISPATCH_MARK_KEY)
    if not redis.scard(PENDING_KEY):
        return False
    # Not taken back: a request after the release enqueued a dispatch job of its own.
    return bool(redis.set(DISPATCH_MARK_KEY, "1", nx=True, px=_ms(MARK_TTL)))


def enqueue_shipping(redis_url: str, resource_id: str) -> bool:
    """Enqueue the resource's `SHIP_LOGS_JOB` unless one is pending (its mark), so a burst of lines is
    one job. The workers' side of `request_shipping`; returns whether a job was enqueued, never raises."""
    try:
        return enqueue_once(redis_url, mark_key(resource_id), MARK_TTL,
                            Job(SHIP_LOGS_JOB, (resource_id,), queue=LOGS_QUEUE))
    except RedisError:
        log.warning("could not enqueue app log shipping for resource %s", resource_id, exc_info=True)
        return False


def hold_mark(redis_url: str, resource_id: str, until: timedelta) -> None:
    """Keep later lines from enqueueing while a retry of the shipping job is scheduled."""
    redis_connection(redis_url).set(mark_key(resource_id), "1", px=_ms(MARK_TTL + until))


def clear_mark(redis_url: str, resource_id: str) -> None:
    redis_connection(redis_url).delete(mark_key(resource_id))
