"""The periodic sweep: re-enqueue work whose job was lost (DESIGN.md decision 3).

Redis may lose jobs (a restart, a worker killed mid-job, or refusing them when the web process
enqueues after its commit); PostgreSQL still says what is unfinished: resources stuck in
`provisioning` that no attempt has touched for longer than the longest retry delay, or that no
attempt ever touched; OAuth grants of provisioned resources never swapped for tokens while they
can still be; and app log lines that nobody shipped. The sweep also deletes shipped log lines after a day
and purges deprovisioned resources (`provisioning.purge_deprovisioned`).

It runs every `INTERVAL` on RQ's scheduler. Each run schedules the next one under an id named for
its time slot, so however many workers start, one sweep per slot is scheduled.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from provider.models import AppLogLine, Resource
from provider.models.resource import PROVISIONED, PROVISIONING
from provider.services import applog
from provider.services.provisioning import purge_deprovisioned
from provider.settings import Settings
from provider.tasks import DEFAULT_QUEUE, PROVISIONING_QUEUE, redis_connection
from workers.context import job_session, job_settings
from workers.jobs.provisioning import COMPLETE_JOB, EXCHANGE_JOB, PROVISIONING_BACKOFF

log = logging.getLogger(__name__)

SWEEP_JOB = "workers.jobs.sweep.sweep"
# Often enough that work whose first job was lost still starts within a grant's five minutes.
INTERVAL = timedelta(minutes=1)
# An attempt touches its resource; a live retry chain never waits longer than its longest delay.
STUCK_AFTER = timedelta(seconds=max(PROVISIONING_BACKOFF.delays)) + timedelta(minutes=15)
# A line this old and unshipped has no live job (its mark has expired) or is being retried.
LOG_LINE_STALE_AFTER = timedelta(minutes=2)
# A first job this late was never enqueued; grants older than the look-back are long expired.
FIRST_JOB_LATE_AFTER = timedelta(seconds=30)
GRANT_LOOKBACK = timedelta(hours=1)
SHIPPED_KEPT_FOR = timedelta(days=1)


def next_slot(now: datetime) -> datetime:
    """The first slot boundary strictly after `now` (slots are INTERVAL-aligned epoch times)."""
    step = int(INTERVAL.total_seconds())
    return datetime.fromtimestamp((int(now.timestamp()) // step + 1) * step, UTC)


def schedule_next(connection: Redis, *, now: datetime | None = None) -> bool:
    """Schedule the sweep for the next slot unless it is already scheduled; True if this call did."""
    slot = next_slot(now or datetime.now(UTC))
    queue = Queue(DEFAULT_QUEUE, connection=connection)
    try:
        queue.enqueue_at(slot, SWEEP_JOB, job_id=f"cloudmailin-sweep-{int(slot.timestamp())}", unique=True)
    except DuplicateJobError:
        return False
    return True


def stuck_provisioning(session: Session, now: datetime) -> list[str]:
    return list(session.scalars(
        select(Resource.id).where(Resource.state == PROVISIONING, Resource.updated_at < now - STUCK_AFTER)
    ))


def never_attempted(session: Session, now: datetime) -> list[str]:
    """Async provisions whose first job never ran (Redis refused it at the request): no attempt has
    touched them since the INSERT. Found within a sweep interval, while the grant may still work."""
    return list(session.scalars(
        select(Resource.id).where(
            Resource.state == PROVISIONING,
            Resource.updated_at == Resource.created_at,
            Resource.created_at < now - FIRST_JOB_LATE_AFTER,
        )
    ))


def unexchanged_grants(session: Session, now: datetime) -> list[str]:
    """Sync provisions whose grant was never swapped for tokens and can still be (its job was
    lost). A grant whose job keeps failing is tried again too, until it expires."""
    return list(session.scalars(
        select(Resource.id).where(
            Resource.state == PROVISIONED,
            Resource.oauth_grant_enc.is_not(None),
            Resource.access_token_enc.is_(None),
            Resource.created_at < now - FIRST_JOB_LATE_AFTER,
            Resource.created_at > now - GRANT_LOOKBACK,
            or_(Resource.oauth_grant_expires_at.is_(None), Resource.oauth_grant_expires_at > now),
        )
    ))


def resources_with_stale_lines(session: Session, now: datetime) -> list[str]:
    return list(session.scalars(
        select(AppLogLine.resource_id)
        .where(AppLogLine.shipped_at.is_(None), AppLogLine.created_at < now - LOG_LINE_STALE_AFTER)
        .distinct()
    ))


def sweep_once(session: Session, settings: Settings, *, now: datetime | None = None) -> dict[str, int]:
    now = now or datetime.now(UTC)
    provisioning = Queue(PROVISIONING_QUEUE, connection=redis_connection(settings.redis_url))
    stuck = sorted({*stuck_provisioning(session, now), *never_attempted(session, now)})
    for resource_id in stuck:
        provisioning.enqueue(COMPLETE_JOB, resource_id)
    grants = unexchanged_grants(session, now)
    for resource_id in grants:
        provisioning.enqueue(EXCHANGE_JOB, resource_id)
    shipping = sum(
        applog.enqueue_shipping(settings, resource_id)
        for resource_id in resources_with_stale_lines(session, now)
    )
    purged = session.execute(
        delete(AppLogLine).where(AppLogLine.shipped_at < now - SHIPPED_KEPT_FOR)
    )
    session.commit()
    counts = {
        "provisioning": len(stuck),
        "grant_exchanges": len(grants),
        "log_shipping": shipping,
        "purged_log_lines": int(getattr(purged, "rowcount", 0) or 0),
        "purged_resources": purge_deprovisioned(session, now=now),
    }
    if counts["provisioning"] or counts["grant_exchanges"] or counts["log_shipping"]:
        log.info("sweep re-enqueued lost work: %s", counts)
    return counts


def sweep() -> dict[str, int]:
    settings = job_settings()
    try:
        with job_session(settings) as session:
            return sweep_once(session, settings)
    finally:
        schedule_next(redis_connection(settings.redis_url))
