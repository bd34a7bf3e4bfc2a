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
import os
import threading
import time
from collections.abc import Callable, Iterable
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


GATHER_SECONDS = 0.05
"""How long an ask waits for more ids before it goes: under load, the provisions of those 50 ms
share one round trip (a line's shipping waits that much longer)."""


class BackgroundAsks:
    """`request_shipping` off the committing caller's path: the ids given while an ask is on its
    way to Redis, or within `GATHER_SECONDS` of the first, go together in one ask, made by a thread
    of this object's own (a greenlet under the web's gevent workers), started by the first id and
    ended when none is left.

    For the web: there the ask's round trip made every provision wait its turn in gevent's hub and
    cost it about 0.2 ms of CPU, a sixth of the request (bench/provision.py at 20 clients: 0.30 of
    ping's rate with the ask in the request, 0.35 without). Nothing is lost by it: the lines are in
    PostgreSQL before their ids get here, and an ask that dies with its process (or fails) is the
    sweep's, which asks again for lines unshipped after `LOG_LINE_STALE_AFTER`.
    """

    def __init__(self, ask: Callable[[list[str]], object], *, gather: float = GATHER_SECONDS) -> None:
        self._ask = ask
        self._gather = gather
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._running = False
        self._pid = os.getpid()

    def add(self, resource_ids: Iterable[str]) -> None:
        """Have the resources asked for; returns at once, never raises."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread is not here
                self._pid, self._running = os.getpid(), False
                self._pending.clear()
            self._pending.update(resource_ids)
            if self._running or not self._pending:
                return
            self._running = True
        threading.Thread(target=self._run, name="log-shipping-asks", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self._gather)
            with self._lock:
                if not self._pending:
                    self._running = False
                    return
                ids = sorted(self._pending)
                self._pending.clear()
            try:
                self._ask(ids)
            except Exception:  # the thread must go on for the next ids; the sweep covers these
                log.exception("asking for app log shipping of %d resources failed", len(ids))


_background: dict[str, BackgroundAsks] | None = None
_background_lock = threading.Lock()


def ask_in_background() -> None:
    """Have this process's after-commit asks go through `BackgroundAsks` (the web's gevent
    workers call this as they start; other processes ask in the committing call)."""
    global _background
    with _background_lock:
        if _background is None:
            _background = {}


def shipping_asker(redis_url: str) -> Callable[[list[str]], object]:
    """How this process asks for the shipping of committed lines: `request_shipping` in the
    committing call, or through its `BackgroundAsks` (see `ask_in_background`)."""
    if _background is None:
        return lambda ids: request_shipping(redis_url, *ids)
    with _background_lock:
        asks = _background.get(redis_url)
        if asks is None:
            asks = _background[redis_url] = BackgroundAsks(lambda ids: request_shipping(redis_url, *ids))
    return asks.add


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
