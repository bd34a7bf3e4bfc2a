"""The periodic sweep: re-enqueue work whose job was lost (DESIGN.md decision 3).

Redis may lose jobs (a restart, a worker killed mid-job, or refusing them when the web process
enqueues after its commit); PostgreSQL still says what is unfinished: resources stuck in
`provisioning` that no attempt has touched for longer than the longest retry delay, or that no
attempt ever touched; OAuth grants of provisioned resources never swapped for tokens while they
can still be; deprovision actions of given-up provisions that never reached Heroku; and app log
lines that nobody shipped. The sweep also deletes shipped log lines after a day
purges deprovisioned resources (`provisioning.purge_deprovisioned`) and history past the plan's
`history_days` (`retention.purge_expired_history`).

It runs every `SWEEP_INTERVAL` seconds on RQ's scheduler, under a job id named for its time slot,
so one sweep per slot is scheduled however many workers ask. The schedule itself lives in Redis,
so it is not left to the sweep alone: every worker calls `keep_scheduled` every few seconds
(`workers.worker`), which restores a missing schedule. When Redis has lost its data (a FLUSHALL,
a fail-over to an empty store: the `SWEPT_KEY` marker is gone), every retry chain is gone too,
and the age thresholds above would leave those resources waiting for an hour while their grants
expire; so the first worker to notice enqueues a recovery sweep at once that re-enqueues all
unfinished work, whatever its age (the jobs are idempotent, so work that was not lost is harmless).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from redis import Redis, RedisError
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from provider import log_shipping_queue
from provider.jobs import RESEND_JOB
from provider.models import AppLogLine, InboundMessage, Resource
from provider.models.inbound_message import RESEND_QUEUED
from provider.models.resource import DEPROVISIONED, PROVISIONED, PROVISIONING
from provider.services import events_webhook
from provider.services.provisioning import purge_deprovisioned
from provider.services.retention import purge_expired_history
from provider.settings import Settings
from provider.tasks import (
    COMPLETE_PROVISIONING_JOB,
    DEFAULT_QUEUE,
    DEPROVISION_ACTION_JOB,
    EXCHANGE_GRANT_JOB,
    PROVISIONING_QUEUE,
    SWEEP_JOB,
    redis_connection,
)
from workers.context import job_session, job_settings
from workers.jobs.events_webhook import enqueue_posting
from workers.jobs.provisioning import DEPROVISION_BACKOFF, PROVISIONING_BACKOFF

log = logging.getLogger(__name__)

# Set (no TTL) by the first worker that finds it missing: Redis was emptied, or is new.
SWEPT_KEY = "cloudmailin:sweep:redis_swept"
# An attempt touches its resource; a live retry chain never waits longer than its longest delay.
STUCK_AFTER = timedelta(seconds=max(PROVISIONING_BACKOFF.delays)) + timedelta(minutes=15)
# Its attempts touch nothing, so: the longest a live deprovision-action chain can take in all.
DEPROVISION_STUCK_AFTER = (
    timedelta(seconds=DEPROVISION_BACKOFF.max_delay * len(DEPROVISION_BACKOFF.delays)) + timedelta(minutes=15)
)
# A line this old and unshipped has no live job (its mark has expired) or is being retried.
LOG_LINE_STALE_AFTER = timedelta(minutes=2)
# A first job this late was never enqueued; grants older than the look-back are long expired.
FIRST_JOB_LATE_AFTER = timedelta(seconds=30)
GRANT_LOOKBACK = timedelta(hours=1)
SHIPPED_KEPT_FOR = timedelta(days=1)


def next_slot(now: datetime, interval: int) -> datetime:
    """The first slot boundary strictly after `now` (slots are `interval`-aligned epoch seconds)."""
    return datetime.fromtimestamp((int(now.timestamp()) // interval + 1) * interval, UTC)


def slot_job_id(slot: datetime) -> str:
    return f"cloudmailin-sweep-{int(slot.timestamp())}"


def schedule_next(connection: Redis, interval: int, *, now: datetime | None = None) -> bool:
    """Schedule the sweep for the next slot unless it is already scheduled; True if this call did."""
    slot = next_slot(now or datetime.now(UTC), interval)
    queue = Queue(DEFAULT_QUEUE, connection=connection)
    try:
        queue.enqueue_at(slot, SWEEP_JOB, job_id=slot_job_id(slot), unique=True)
    except DuplicateJobError:
        return False
    return True


def keep_scheduled(connection: Redis, interval: int, *, now: datetime | None = None) -> str | None:
    """What a worker calls every few seconds: one round trip while all is well. Restores the
    next slot's sweep if it is missing, and after a loss of Redis's data enqueues one recovery
    sweep (the SET NX on `SWEPT_KEY` lets only one of the workers that noticed do it). Returns
    what it did, None for nothing."""
    now = now or datetime.now(UTC)
    pipe = connection.pipeline(transaction=False)
    pipe.set(SWEPT_KEY, now.isoformat(), nx=True)
    pipe.exists(Job.key_for(slot_job_id(next_slot(now, interval))))
    emptied, scheduled = pipe.execute()
    done = None
    if emptied:
        try:
            Queue(DEFAULT_QUEUE, connection=connection).enqueue(SWEEP_JOB, kwargs={"recovery": True})
        except RedisError:
            connection.delete(SWEPT_KEY)  # so the next check tries again
            raise
        log.warning("Redis holds no sweep marker (emptied, or new): recovery sweep enqueued")
        done = "recovery sweep enqueued"
    if not scheduled and schedule_next(connection, interval, now=now):
        done = f"{done + ', ' if done else ''}sweep scheduled"
    return done


def stuck_provisioning(session: Session, now: datetime, stuck_after: timedelta = STUCK_AFTER) -> list[str]:
    return list(session.scalars(
        select(Resource.id).where(Resource.state == PROVISIONING, Resource.updated_at < now - stuck_after)
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


def unexchanged_grants(
    session: Session, now: datetime, late_after: timedelta = FIRST_JOB_LATE_AFTER
) -> list[str]:
    """Sync provisions whose grant was never swapped for tokens and can still be (its job was
    lost). A grant whose job keeps failing is tried again too, until it expires."""
    return list(session.scalars(
        select(Resource.id).where(
            Resource.state == PROVISIONED,
            Resource.oauth_grant_enc.is_not(None),
            Resource.access_token_enc.is_(None),
            Resource.created_at < now - late_after,
            Resource.created_at > now - GRANT_LOOKBACK,
            or_(Resource.oauth_grant_expires_at.is_(None), Resource.oauth_grant_expires_at > now),
        )
    ))


def pending_deprovision_actions(
    session: Session, now: datetime, stuck_after: timedelta = DEPROVISION_STUCK_AFTER
) -> list[str]:
    """Resources given up on whose deprovision action never reached Heroku (its job was lost):
    only they are deprovisioned and still hold tokens, which go once the action is posted or its
    retries run out (a partner DELETE erases them at once)."""
    return list(session.scalars(
        select(Resource.id).where(
            Resource.state == DEPROVISIONED,
            Resource.access_token_enc.is_not(None),
            Resource.deprovisioned_at < now - stuck_after,
        )
    ))


def resources_with_stale_lines(
    session: Session, now: datetime, stale_after: timedelta = LOG_LINE_STALE_AFTER
) -> list[str]:
    return list(session.scalars(
        select(AppLogLine.resource_id)
        .where(AppLogLine.shipped_at.is_(None), AppLogLine.created_at < now - stale_after)
        .distinct()
    ))


REENQUEUED = ("provisioning", "grant_exchanges", "deprovision_actions", "log_shipping", "resends")


RESEND_STUCK_AFTER = timedelta(minutes=10)
"""A re-send's job takes at most the target's timeout and its redirects: one still queued after
this long has no job (Redis lost it, or its worker was killed)."""


def queued_resends(session: Session, now: datetime, stuck_after: timedelta = RESEND_STUCK_AFTER) -> list[int]:
    return list(session.scalars(
        select(InboundMessage.id).where(
            InboundMessage.status == RESEND_QUEUED, InboundMessage.received_at < now - stuck_after
        )
    ))


def sweep_once(
    session: Session, settings: Settings, *, now: datetime | None = None, recovery: bool = False
) -> dict[str, int]:
    """One sweep. `recovery` (Redis lost its data, so no job or retry is pending anywhere):
    every unfinished thing counts as lost, however recently it was touched."""
    now = now or datetime.now(UTC)
    provisioning = Queue(PROVISIONING_QUEUE, connection=redis_connection(settings.redis_url))
    if recovery:
        stuck = sorted(stuck_provisioning(session, now, timedelta(0)))
        grants = unexchanged_grants(session, now, timedelta(0))
        deprovisions = pending_deprovision_actions(session, now, timedelta(0))
        stale = resources_with_stale_lines(session, now, timedelta(0))
        resends = queued_resends(session, now, timedelta(0))
    else:
        stuck = sorted({*stuck_provisioning(session, now), *never_attempted(session, now)})
        grants = unexchanged_grants(session, now)
        deprovisions = pending_deprovision_actions(session, now)
        stale = resources_with_stale_lines(session, now)
        resends = queued_resends(session, now)
    default = Queue(DEFAULT_QUEUE, connection=redis_connection(settings.redis_url))
    for row_id in resends:
        default.enqueue(RESEND_JOB, row_id)
    for resource_id in stuck:
        provisioning.enqueue(COMPLETE_PROVISIONING_JOB, resource_id)
    for resource_id in grants:
        provisioning.enqueue(EXCHANGE_GRANT_JOB, resource_id)
    for resource_id in deprovisions:
        provisioning.enqueue(DEPROVISION_ACTION_JOB, resource_id)
    shipping = sum(log_shipping_queue.enqueue_shipping(settings.redis_url, rid) for rid in stale)
    unwanted_events = events_webhook.clear_unwanted(session)
    webhooks = sum(
        enqueue_posting(settings, resource_id)
        for resource_id in events_webhook.resources_with_pending(session)
    )
    purged = session.execute(
        delete(AppLogLine).where(AppLogLine.shipped_at < now - SHIPPED_KEPT_FOR)
    )
    session.commit()
    counts = {
        "provisioning": len(stuck),
        "grant_exchanges": len(grants),
        "deprovision_actions": len(deprovisions),
        "log_shipping": shipping,
        "resends": len(resends),
        "events_webhooks": webhooks,
        "unwanted_events": unwanted_events,
        "purged_log_lines": int(getattr(purged, "rowcount", 0) or 0),
        "purged_resources": purge_deprovisioned(session, now=now),
    }
    expired = purge_expired_history(session, now)
    counts["purged_inbound_history"] = expired["inbound"]
    counts["purged_outbound_history"] = expired["outbound"]
    if any(counts[kind] for kind in REENQUEUED):
        log.info("sweep re-enqueued lost work: %s", counts)
    return counts


def sweep(recovery: bool = False) -> dict[str, int]:
    """The job: the scheduled one every slot, or the recovery sweep `keep_scheduled` enqueues."""
    settings = job_settings()
    try:
        with job_session(settings) as session:
            return sweep_once(session, settings, recovery=recovery)
    finally:
        schedule_next(redis_connection(settings.redis_url), settings.sweep_interval)
