"""Enqueueing background jobs only after the database commit (DESIGN.md decision 3).

A job enqueued before its transaction commits can run before the data it needs is visible,
or run for data that was then rolled back. `enqueue_after_commit` holds the job on the session
and hands it to RQ once the session commits; a rollback drops it. If Redis refuses the job then,
the committed operation still succeeds: the periodic sweep (workers/jobs/sweep.py) finds the
unfinished work in PostgreSQL and enqueues it again.

This is the RQ and Redis side; services see only provider/jobs.py's `JobQueue`, which
`RqJobQueue` implements here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from redis import Redis, RedisError
from rq import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from .jobs import (  # noqa: F401  (the domain's side, provider/jobs.py; importable from here as before)
    COMPLETE_PROVISIONING_JOB,
    DEFAULT_QUEUE,
    DELIVER_JOB,
    DEPROVISION_ACTION_JOB,
    DISPATCH_SHIPPING_JOB,
    DRAIN_JOB,
    EXCHANGE_GRANT_JOB,
    JOB_NAMES,
    LOGS_QUEUE,
    OUTBOUND_QUEUES,
    POST_EVENTS_JOB,
    PROVISIONING_QUEUE,
    QUEUES,
    SHIP_LOGS_JOB,
    SWEEP_JOB,
    Job,
    JobQueue,
    QueueUnavailable,
)
from .redis_pool import REDIS_TIMEOUT, redis_connection  # noqa: F401  (importable from here as before)

if TYPE_CHECKING:
    from .services.sending import Accepted

log = logging.getLogger(__name__)

def enqueue_now(redis_url: str, job: Job) -> None:
    queue = Queue(job.queue, connection=redis_connection(redis_url))
    queue.enqueue(
        job.func,  # type: ignore[type-var]  # rq accepts dotted paths as well as callables
        *job.args,
        job_id=job.job_id,
        **job.kwargs,
    )


def enqueue_after_commit(session: Session, redis_url: str, job: Job) -> None:
    """Enqueue `job` when `session` commits; forget it if the session rolls back."""
    on_commit(session, f"jobs:{redis_url}", lambda jobs: _enqueue_all(redis_url, jobs), job)


@dataclass(frozen=True)
class RqJobQueue:
    """The `JobQueue` of every process: RQ on the Redis at `redis_url`."""

    redis_url: str

    def enqueue_after_commit(self, session: Session, job: Job) -> None:
        enqueue_after_commit(session, self.redis_url, job)

    def enqueue(self, job: Job) -> None:
        try:
            enqueue_now(self.redis_url, job)
        except RedisError as exc:
            raise QueueUnavailable(str(exc)) from exc

    def ship_logs_after_commit(self, session: Session, resource_id: str) -> None:
        from .log_shipping_queue import shipping_asker  # it enqueues through this module

        on_commit(session, f"applog:{self.redis_url}", shipping_asker(self.redis_url), resource_id)


def enqueue_once(redis_url: str, mark: str, ttl: timedelta, job: Job, *, value: str = "1") -> bool:
    """Enqueue `job` unless `mark` is set, and set it for `ttl`; True if enqueued. The job (or
    whatever it hands the work on to) deletes the mark when done, so a burst of requests is one
    job; a mark whose job was lost expires. Raises RedisError."""
    connection = redis_connection(redis_url)
    if not connection.set(mark, value, nx=True, px=milliseconds(ttl)):
        return False
    enqueue_now(redis_url, job)
    return True


def milliseconds(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def _enqueue_all(redis_url: str, jobs: list[Job]) -> None:
    for job in jobs:
        enqueue_now(redis_url, job)


# What sessions hold for their commit: key -> (flush, items). One pair of listeners on the
# Session class serves every session of the process: adding listeners per session cost more
# web-process CPU on the provisioning path than the INSERT did.
_HELD = "cloudmailin_after_commit"
_hooks_installed = False
_install_lock = threading.Lock()


def on_commit(session: Session, key: str, flush: Callable[[list[Any]], object], item: Any) -> None:
    """Hold `item` on `session`; once it commits, `flush` gets every item held under `key`, in order.

    A rollback of the whole transaction drops them (a rolled-back SAVEPOINT does not: the outer
    transaction may still commit what it did before). Items held while no transaction is open
    wait for the next commit.
    """
    _install_hooks()
    held: dict[str, tuple[Callable[[list[Any]], object], list[Any]]] = session.info.setdefault(_HELD, {})
    entry = held.get(key)
    if entry is None:
        held[key] = (flush, [item])
    else:
        entry[1].append(item)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    with _install_lock:
        if not _hooks_installed:
            event.listen(Session, "after_commit", _after_commit)
            event.listen(Session, "after_soft_rollback", _after_soft_rollback)
            _hooks_installed = True


def _after_commit(session: Session) -> None:
    held = session.info.pop(_HELD, None)
    if not held:
        return
    for key, (flush, items) in held.items():
        try:
            flush(items)
        except Exception:
            # The transaction is committed and its answer must not turn into an error now: work
            # whose job was never enqueued is found in PostgreSQL by the sweep (decision 3).
            log.exception("after commit, %d items for %s were not handed over; the sweep will "
                          "find the work", len(items), key.split(":", 1)[0])


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_HELD, None)


WAKE_FLAG = "cloudmailin:delivery-wake:"
"""Prefix of one Redis key per delivery queue, set while a delivery job of that queue is waiting."""
WAKE_TTL = timedelta(seconds=60)
"""A flag whose job was lost (enqueue failed after the SET, a worker died holding it) stops new
jobs for at most this long; the delivery workers' poller enqueues a drain meanwhile."""


def wake_flag(queue: str) -> str:
    return f"{WAKE_FLAG}{queue}"


def clear_wake_flags(connection: Redis) -> None:
    """Called by every delivery run before its first claim: whatever is committed from now on
    wakes a new job, and whatever was committed before is seen by this run's claim."""
    connection.delete(*(wake_flag(queue) for queue in OUTBOUND_QUEUES.values()))


def wake_once(redis_url: str, job: Job) -> bool:
    """Enqueue `job` unless a delivery job of its queue is already waiting; True if enqueued.

    One job per accepted message cost the web an RQ enqueue (two Redis round trips) and the
    worker RQ's bookkeeping plus a claim query per message, mostly for messages an earlier run
    had already delivered. A waiting job claims every due recipient when it runs, so it is enough
    that one is waiting: each run clears the flags (`clear_wake_flags`) before it claims.
    """
    return enqueue_once(redis_url, wake_flag(job.queue), WAKE_TTL, job, value=job.job_id or "drain")


def wake_delivery(redis_url: str) -> Callable[[Session, Accepted], None]:
    """What `services.sending.accept` calls to have a stored message delivered after the commit:
    its own job `deliver-<id>` unless a delivery job of its queue is already waiting (`wake_once`)."""

    def wake(session: Session, message: Accepted) -> None:
        job = Job(
            DELIVER_JOB,
            (str(message.id),),
            queue=OUTBOUND_QUEUES[message.priority],
            job_id=f"deliver-{message.id}",
        )
        on_commit(session, f"wake:{redis_url}", lambda jobs: _wake_all(redis_url, jobs), job)

    return wake


def _wake_all(redis_url: str, jobs: list[Job]) -> None:
    """One `wake_once` per queue of what a commit stored (the first message's job): a waiting job
    claims every due recipient of its queue, so a batch of messages needs no more."""
    first: dict[str, Job] = {}
    for job in jobs:
        first.setdefault(job.queue, job)
    for job in first.values():
        wake_once(redis_url, job)
