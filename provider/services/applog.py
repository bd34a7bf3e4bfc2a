"""Lines for the customer's app log (`heroku logs`), written by any process, shipped by a worker.

`record` stores the line in the caller's transaction, so a line exists exactly when the event
it describes was committed, and asks for `workers.jobs.logs.ship_logs(resource_id)` once that
transaction commits. A Redis mark per resource makes a burst of lines one job: the first line
sets the mark and enqueues, later ones see the mark and only add their row; the job clears the
mark when it has shipped everything. Logging is a side effect: nothing here raises into the
operation that logged because Redis or the log endpoint misbehaves.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from redis import RedisError
from rq import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session

from provider.crypto import SecretBox
from provider.models import AppLogLine, Resource
from provider.settings import Settings
from provider.tasks import LOGS_QUEUE, redis_connection

log = logging.getLogger(__name__)

SHIP_JOB = "workers.jobs.logs.ship_logs"
# How long a pending-job mark lives on its own: if its job is lost (worker killed), a later line
# or the sweep enqueues a new one after this.
MARK_TTL = timedelta(minutes=10)

_PENDING = "cloudmailin_applog_pending"
_HOOKED = "cloudmailin_applog_hooked"


def mark_key(resource_id: str) -> str:
    return f"cloudmailin:ship_logs:{resource_id}"


def log_input_url(settings: Settings, resource: Resource) -> str | None:
    if resource.log_input_url_enc is None:
        return None
    return SecretBox(settings.encryption_key).decrypt(resource.log_input_url_enc)


def record(session: Session, settings: Settings, resource_id: str, message: str) -> None:
    """Add a line for the app's log; shipped after the caller commits. Resources Heroku gave no
    `log_input_url` (kensa, old add-ons) have nowhere to ship to, so nothing is stored."""
    resource = session.get(Resource, resource_id)
    if resource is None or resource.log_input_url_enc is None:
        return
    session.add(AppLogLine(resource_id=resource_id, message=message))
    ship_after_commit(session, settings, resource_id)


def ship_after_commit(session: Session, settings: Settings, resource_id: str) -> None:
    """Ask for shipping once `session` commits, for a line the caller inserted itself (the
    provisioning hot path writes its line in the same statement as the resource)."""
    pending: set[str] = session.info.setdefault(_PENDING, set())
    pending.add(resource_id)
    if not session.info.get(_HOOKED):
        session.info[_HOOKED] = True
        event.listen(session, "after_commit", lambda s: _after_commit(s, settings))
        event.listen(session, "after_soft_rollback", lambda s, _tx: s.info.pop(_PENDING, None))


def _after_commit(session: Session, settings: Settings) -> None:
    for resource_id in sorted(session.info.pop(_PENDING, set())):
        request_shipping(settings, resource_id)


def request_shipping(settings: Settings, resource_id: str, *, delay: timedelta | None = None) -> bool:
    """Enqueue a shipping job unless one is already pending for the resource (the mark).
    Returns whether a job was enqueued; never raises."""
    try:
        redis = redis_connection(settings.redis_url)
        ttl = MARK_TTL + (delay or timedelta(0))
        if not redis.set(mark_key(resource_id), "1", nx=True, px=int(ttl.total_seconds() * 1000)):
            return False
        queue = Queue(LOGS_QUEUE, connection=redis)
        if delay:
            queue.enqueue_in(delay, SHIP_JOB, resource_id)
        else:
            queue.enqueue(SHIP_JOB, resource_id)
        return True
    except RedisError:
        # The lines are safe in PostgreSQL; the sweep enqueues their job once Redis is back.
        log.warning("could not enqueue app log shipping for resource %s", resource_id, exc_info=True)
        return False


def hold_mark(settings: Settings, resource_id: str, until: timedelta) -> None:
    """Keep later lines from enqueueing while a retry of the shipping job is scheduled."""
    ttl = MARK_TTL + until
    redis_connection(settings.redis_url).set(mark_key(resource_id), "1", px=int(ttl.total_seconds() * 1000))


def clear_mark(settings: Settings, resource_id: str) -> None:
    redis_connection(settings.redis_url).delete(mark_key(resource_id))
