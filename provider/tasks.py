"""Enqueueing background jobs only after the database commit (DESIGN.md decision 3).

A job enqueued before its transaction commits can run before the data it needs is visible,
or run for data that was then rolled back. `enqueue_after_commit` holds the job on the session
and hands it to RQ once the session commits; a rollback drops it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rq import Queue, Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

DEFAULT_QUEUE = "default"
PROVISIONING_QUEUE = "provisioning"
LOGS_QUEUE = "logs"
QUEUES = (PROVISIONING_QUEUE, DEFAULT_QUEUE, LOGS_QUEUE)

_PENDING_KEY = "cloudmailin_pending_jobs"


@dataclass
class Job:
    func: str | Callable[..., Any]
    args: tuple[Any, ...]
    queue: str = DEFAULT_QUEUE
    job_id: str | None = None
    retry: Retry | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


_connections: dict[str, Redis] = {}


def redis_connection(redis_url: str) -> Redis:
    """One connection pool per URL per process."""
    conn = _connections.get(redis_url)
    if conn is None:
        conn = _connections[redis_url] = Redis.from_url(redis_url)
    return conn


def enqueue_now(redis_url: str, job: Job) -> None:
    queue = Queue(job.queue, connection=redis_connection(redis_url))
    queue.enqueue(
        job.func,  # type: ignore[type-var]  # rq accepts dotted paths as well as callables
        *job.args,
        job_id=job.job_id,
        retry=job.retry,
        **job.kwargs,
    )


def enqueue_after_commit(session: Session, redis_url: str, job: Job) -> None:
    """Enqueue `job` when `session` commits; forget it if the session rolls back."""
    pending: list[Job] = session.info.setdefault(_PENDING_KEY, [])
    pending.append(job)
    if not session.info.get("_cloudmailin_hooked"):
        session.info["_cloudmailin_hooked"] = True
        event.listen(session, "after_commit", lambda s: _flush(s, redis_url))
        event.listen(session, "after_soft_rollback", lambda s, _tx: s.info.pop(_PENDING_KEY, None))


def _flush(session: Session, redis_url: str) -> None:
    for job in session.info.pop(_PENDING_KEY, []):
        enqueue_now(redis_url, job)
