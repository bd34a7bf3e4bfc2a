"""The delivery worker process (`python -m workers.delivery`, the Procfile's `delivery`).

Why not RQ's default worker: it forks a child per job, about 50 jobs a second on a 2-core dyno,
and each child starts with no SMTP connections, no DNS answers and no DKIM keys. This worker runs
jobs in its own process (RQ's `SimpleWorker`) on an event loop that keeps all three between jobs,
and each job delivers every due recipient it can claim, grouped by destination, so throughput is
bounded by the network and PostgreSQL rather than by job overhead.

What is kept of `HerokuWorker`: SIGTERM is a warm shutdown (the job in hand finishes; a job
delivers for at most `JOB_BUDGET` seconds, well inside Heroku's 30 s grace period). What
`HerokuWorker` adds for forked children (SIGRTMIN to the horse) has nothing to act on here.

A poller thread asks PostgreSQL every `POLL_SECONDS` whether recipients are due (retries whose
time has come, work whose job was lost with Redis's data, a killed worker's expired leases) and
enqueues a `drain` when no job is waiting: every running worker heals a flushed Redis on its own.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from redis import Redis
from rq import Queue, SimpleWorker

from provider.db import session_factory
from provider.settings import Settings, get_settings
from provider.tasks import DRAIN_JOB, OUTBOUND_QUEUES, Job, enqueue_now

from . import store

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0


class DeliveryWorker(SimpleWorker):
    """Jobs in-process; SIGTERM finishes the current job, then exits (BaseWorker's warm stop)."""


def delivery_queues(connection: Redis) -> list[Queue]:
    return [Queue(name, connection=connection) for name in OUTBOUND_QUEUES.values()]


def poll_once(settings: Settings, connection: Redis) -> bool:
    """Enqueue a drain if recipients are due and no delivery job is waiting; True if it did."""
    if any(queue.count for queue in delivery_queues(connection)):
        return False
    with session_factory(settings.database_url)() as session:
        due = store.due_count(session, datetime.now(UTC))
    if not due:
        return False
    enqueue_now(settings.redis_url, Job(DRAIN_JOB, (), queue=OUTBOUND_QUEUES["standard"]))
    return True


def _poll_forever(settings: Settings, connection: Redis, stop: threading.Event) -> None:
    while not stop.wait(POLL_SECONDS):
        try:
            poll_once(settings, connection)
        except Exception:
            # PostgreSQL or Redis away: the next round tries again; jobs already queued run on.
            log.warning("delivery poller could not check for due recipients", exc_info=True)


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    connection = Redis.from_url(settings.redis_url, socket_timeout=10, health_check_interval=30)
    stop = threading.Event()
    poller = threading.Thread(
        target=_poll_forever, args=(settings, connection, stop), name="delivery-poller", daemon=True
    )
    poller.start()
    try:
        # RQ logs each job at INFO by default, whatever LOG_LEVEL says.
        DeliveryWorker(delivery_queues(connection), connection=connection).work(
            logging_level=settings.log_level
        )
    finally:
        stop.set()
