"""Lines for the customer's app log (`heroku logs`), written by any process, shipped by a worker.

`record` stores the line in the caller's transaction, so a line exists exactly when the event
it describes was committed, and asks for shipping once that transaction commits. Asking is one
Redis round trip (`request_shipping`): the resource id joins a set that one dispatch job at a
time turns into `workers.jobs.logs.ship_logs(resource_id)` jobs. A Redis mark per resource makes
a burst of lines one shipping job; the job clears the mark when it has shipped everything.
Logging is a side effect: nothing here raises into the operation that logged because Redis or
the log endpoint misbehaves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TypeVar

from redis import Redis, RedisError
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline
from rq import Queue
from sqlalchemy.orm import Session

from provider.crypto import box_for
from provider.models import AppLogLine, Resource
from provider.services.history import storable_text
from provider.settings import Settings
from provider.tasks import DISPATCH_SHIPPING_JOB, LOGS_QUEUE, SHIP_LOGS_JOB, on_commit, redis_connection

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


def log_input_url(settings: Settings, resource: Resource) -> str | None:
    if resource.log_input_url_enc is None:
        return None
    return box_for(settings).decrypt(resource.log_input_url_enc)


def record(session: Session, settings: Settings, resource_id: str, message: str) -> None:
    """Add a line for the app's log; shipped after the caller commits. Resources Heroku gave no
    `log_input_url` (kensa, old add-ons) have nowhere to ship to, so nothing is stored."""
    resource = session.get(Resource, resource_id)
    if resource is None or resource.log_input_url_enc is None:
        return
    session.add(AppLogLine(resource_id=resource_id, message=message))
    ship_after_commit(session, settings, resource_id)


def line_rows(lines: Iterable[tuple[str, str]], now: datetime) -> Iterator[tuple[str, str, datetime]]:
    """(resource id, message) lines as `LINE_COLUMNS` values for a bulk write (the SMTP edge's
    COPY), for resources the caller knows to have a log drain."""
    return ((resource_id, storable_text(message) or "", now) for resource_id, message in lines)


LINE_COLUMNS = ("resource_id", "message", "created_at")


def ship_after_commit(session: Session, settings: Settings, resource_id: str) -> None:
    """Ask for shipping once `session` commits, for a line the caller inserted itself (the
    provisioning hot path writes its line in the same statement as the resource)."""
    on_commit(session, f"applog:{settings.redis_url}", lambda ids: request_shipping(settings, *ids),
              resource_id)


def request_shipping(settings: Settings, *resource_ids: str) -> bool:
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
        redis = redis_connection(settings.redis_url)
        pipe = redis.pipeline(transaction=False)
        _, dispatching = _ask(pipe, ids).execute()
        return bool(dispatching) and _dispatch(settings)
    except RedisError:
        log.warning("could not request app log shipping for %d resources", len(ids), exc_info=True)
        return False


async def request_shipping_async(
    redis: AsyncRedis, settings: Settings, resource_ids: Iterable[str], dispatcher: Redis | None = None
) -> bool:
    """`request_shipping` for the SMTP edge's event loop (redis.asyncio, no thread hop); the
    dispatch job is enqueued through `dispatcher` (a client with the edge's timeouts) if given."""
    ids = sorted(set(resource_ids))
    if not ids:
        return False
    try:
        _, dispatching = await _ask(redis.pipeline(transaction=False), ids).execute()
        # Once per burst: RQ's enqueue is synchronous, so it runs in a thread.
        return bool(dispatching) and await asyncio.to_thread(_dispatch, settings, dispatcher)
    except RedisError:
        log.warning("could not request app log shipping for %d resources", len(ids), exc_info=True)
        return False


def _ask(pipe: _Pipe, ids: list[str]) -> _Pipe:
    pipe.sadd(PENDING_KEY, *ids)
    pipe.set(DISPATCH_MARK_KEY, "1", nx=True, px=_ms(MARK_TTL))
    return pipe


def _dispatch(settings: Settings, redis: Redis | None = None) -> bool:
    """Enqueue the dispatch job for the mark this process just took."""
    redis = redis or redis_connection(settings.redis_url)
    try:
        Queue(LOGS_QUEUE, connection=redis).enqueue(DISPATCH_SHIPPING_JOB)
    except RedisError:
        redis.delete(DISPATCH_MARK_KEY)  # so the next line tries again instead of waiting out the TTL
        raise
    return True


def take_pending(settings: Settings, count: int) -> list[str]:
    """Up to `count` resource ids that asked for shipping (the dispatch job's side)."""
    taken = redis_connection(settings.redis_url).spop(PENDING_KEY, count)
    return [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in taken or []]


def end_dispatch(settings: Settings) -> bool:
    """Give up the dispatch mark once the set looked empty; True if requests arrived meanwhile
    and this dispatch took the mark back to serve them. A request between the last `take_pending`
    and the release saw the mark and enqueued nothing, so the set is looked at once more."""
    redis = redis_connection(settings.redis_url)
    redis.delete(DISPATCH_MARK_KEY)
    if not redis.scard(PENDING_KEY):
        return False
    # Not taken back: a request after the release enqueued a dispatch job of its own.
    return bool(redis.set(DISPATCH_MARK_KEY, "1", nx=True, px=_ms(MARK_TTL)))


def enqueue_shipping(settings: Settings, resource_id: str) -> bool:
    """Enqueue the resource's `SHIP_LOGS_JOB` unless one is pending (its mark), so a burst of lines is
    one job. The workers' side of `request_shipping`; returns whether a job was enqueued, never raises."""
    try:
        redis = redis_connection(settings.redis_url)
        if not redis.set(mark_key(resource_id), "1", nx=True, px=_ms(MARK_TTL)):
            return False
        Queue(LOGS_QUEUE, connection=redis).enqueue(SHIP_LOGS_JOB, resource_id)
        return True
    except RedisError:
        log.warning("could not enqueue app log shipping for resource %s", resource_id, exc_info=True)
        return False


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def hold_mark(settings: Settings, resource_id: str, until: timedelta) -> None:
    """Keep later lines from enqueueing while a retry of the shipping job is scheduled."""
    redis_connection(settings.redis_url).set(mark_key(resource_id), "1", px=_ms(MARK_TTL + until))


def clear_mark(settings: Settings, resource_id: str) -> None:
    redis_connection(settings.redis_url).delete(mark_key(resource_id))
