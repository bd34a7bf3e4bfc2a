"""Jobs that finish provisioning on Heroku's side.

- `exchange_grant(resource_id)` (sync mode): the provider already answered with the config; only
  the OAuth grant is left to swap for tokens, within its five minutes.
- `complete_provisioning(resource_id)` (async mode): exchange the grant, PATCH the config vars,
  POST the provision action, mark the resource provisioned. Heroku gives the provider 12 hours.
- `deprovision_action(resource_id)`: after giving up, tell Heroku with the deprovision action.

Every job locks the resource row (skipping it if another run holds it) and re-reads the state,
so running one twice is harmless: a provisioned resource is left alone, a used grant is not
exchanged again, and the config PATCH sends the same values. Temporary failures reschedule the
job (`workers.retry`); permanent ones, or running out of attempts or time, give up.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from provider.heroku_platform import (
    PermanentPlatformError,
    PlatformAPI,
    PlatformError,
    TemporaryPlatformError,
)
from provider.models import Resource
from provider.models.resource import DEPROVISIONED, PROVISIONED, PROVISIONING
from provider.services import applog, applog_lines, oauth_tokens
from provider.services.provisioning import config_for, stop_resource
from provider.settings import Settings
from provider.tasks import (
    COMPLETE_PROVISIONING_JOB,
    DEPROVISION_ACTION_JOB,
    EXCHANGE_GRANT_JOB,
    PROVISIONING_QUEUE,
)
from workers.context import job_session, job_settings
from workers.retry import Backoff, schedule

log = logging.getLogger(__name__)

# Heroku waits 12 hours for the provision action; after that there is nothing to complete.
PROVISIONING_DEADLINE = timedelta(hours=12)
# Quick at first (the grant expires five minutes after the provision call), then hourly.
PROVISIONING_BACKOFF = Backoff(
    (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0) + (3600.0,) * 11
)
GRANT_BACKOFF = Backoff((2.0, 5.0, 10.0, 30.0, 60.0, 120.0))
DEPROVISION_BACKOFF = Backoff((10.0, 60.0, 300.0, 1800.0, 3600.0))


def _now() -> datetime:
    return datetime.now(UTC)


def _lock(
    session: Session, settings: Settings, job: str, resource_id: str, attempt: int, backoff: Backoff
) -> Resource | str:
    """The resource with its row locked, or why not. A row someone holds (another run of a job,
    a plan change in a web request) is not waited for: the job comes back after its next delay,
    when a finished run has left nothing to do and a web request has long committed."""
    resource = oauth_tokens.lock_resource(session, resource_id, skip_locked=True)
    if resource is not None:
        return resource
    if not session.scalar(select(exists().where(Resource.id == resource_id))):
        return "resource gone"
    delay = backoff.delay(attempt)
    if delay is None:
        return "resource busy; gave up"
    schedule(settings, PROVISIONING_QUEUE, job, (resource_id, attempt + 1), delay)
    return f"resource busy; retrying in {delay.total_seconds():.0f}s"


def exchange_grant(resource_id: str, attempt: int = 0) -> str:
    settings = job_settings()
    with job_session(settings) as session:
        resource = _lock(session, settings, EXCHANGE_GRANT_JOB, resource_id, attempt, GRANT_BACKOFF)
        if isinstance(resource, str):
            return resource
        if resource.state == DEPROVISIONED:
            return "resource deprovisioned"
        try:
            exchanged = oauth_tokens.exchange_grant(session, settings, resource)
        except TemporaryPlatformError as exc:
            session.rollback()
            delay = GRANT_BACKOFF.delay(attempt, exc.retry_after)
            if delay is not None:
                schedule(settings, PROVISIONING_QUEUE, EXCHANGE_GRANT_JOB, (resource_id, attempt + 1), delay)
                return f"retrying in {delay.total_seconds():.0f}s: {exc}"
            log.warning("OAuth grant of resource %s not exchanged after %d attempts: %s",
                        resource_id, attempt + 1, exc)
            return f"gave up: {exc}"
        except PermanentPlatformError as exc:
            session.rollback()
            log.warning("OAuth grant of resource %s cannot be exchanged: %s", resource_id, exc)
            return f"gave up: {exc}"
        session.commit()
        return "exchanged" if exchanged else "tokens already stored"


def _finish(session: Session, settings: Settings, resource: Resource) -> None:
    """The platform calls, in order; each is safe to repeat."""
    api = PlatformAPI(settings, oauth_tokens.access_token(session, settings, resource))
    api.update_config(resource.id, config_for(session, settings, resource))
    api.provision(resource.id)
    resource.state = PROVISIONED
    applog.record(session, settings, resource.id, applog_lines.provisioned(resource.plan))


def _lock_provisioning(
    session: Session, settings: Settings, resource_id: str, attempt: int
) -> Resource | str:
    """The resource, locked, if it still waits for provisioning; else why there is nothing to do."""
    resource = _lock(session, settings, COMPLETE_PROVISIONING_JOB, resource_id, attempt, PROVISIONING_BACKOFF)
    if isinstance(resource, str):
        return resource
    if resource.state != PROVISIONING:
        return f"resource already {resource.state}"
    return resource


def complete_provisioning(resource_id: str, attempt: int = 0) -> str:
    settings = job_settings()
    with job_session(settings) as session:
        locked = _lock_provisioning(session, settings, resource_id, attempt)
        if isinstance(locked, str):
            return locked
        resource = locked
        resource.updated_at = _now()  # the sweep looks for resources no attempt has touched
        try:
            if oauth_tokens.exchange_grant(session, settings, resource):
                # Tokens are worth keeping whatever happens next: the grant cannot be used twice.
                session.commit()
                relocked = _lock_provisioning(session, settings, resource_id, attempt)
                if isinstance(relocked, str):
                    return relocked
            _finish(session, settings, resource)
        except TemporaryPlatformError as exc:
            session.commit()
            delay = PROVISIONING_BACKOFF.delay(attempt, exc.retry_after)
            if delay is not None and _now() + delay < resource.created_at + PROVISIONING_DEADLINE:
                schedule(
                    settings, PROVISIONING_QUEUE, COMPLETE_PROVISIONING_JOB, (resource_id, attempt + 1), delay
                )
                return f"retrying in {delay.total_seconds():.0f}s: {exc}"
            return give_up(session, settings, resource, exc)
        except PermanentPlatformError as exc:
            session.commit()
            return give_up(session, settings, resource, exc)
        session.commit()
        return "provisioned"


def give_up(session: Session, settings: Settings, resource: Resource, reason: PlatformError) -> str:
    """Provisioning cannot finish: the resource stops working here, and Heroku is told."""
    log.warning("giving up provisioning resource %s: %s", resource.id, reason)
    stop_resource(session, settings, resource, applog_lines.provisioning_failed(),
                  now=_now())
    session.commit()
    return "gave up; " + _post_deprovision(session, settings, resource, 0)


def _post_deprovision(session: Session, settings: Settings, resource: Resource, attempt: int) -> str:
    if not oauth_tokens.has_tokens(resource):
        # Without tokens there is no way to call Heroku; it times the add-on out itself.
        return "no tokens for the deprovision action"
    try:
        token = oauth_tokens.access_token(session, settings, resource)
        PlatformAPI(settings, token).deprovision(resource.id)
        outcome = "deprovision action posted"
    except TemporaryPlatformError as exc:
        session.commit()
        delay = DEPROVISION_BACKOFF.delay(attempt, exc.retry_after)
        if delay is not None:
            schedule(settings, PROVISIONING_QUEUE, DEPROVISION_ACTION_JOB, (resource.id, attempt + 1), delay)
            return f"deprovision action retrying in {delay.total_seconds():.0f}s: {exc}"
        log.warning("deprovision action for resource %s never succeeded: %s", resource.id, exc)
        outcome = f"deprovision action failed: {exc}"
    except PermanentPlatformError as exc:
        log.warning("deprovision action for resource %s refused: %s", resource.id, exc)
        outcome = f"deprovision action refused: {exc}"
    oauth_tokens.forget_tokens(resource)
    session.commit()
    return outcome


def deprovision_action(resource_id: str, attempt: int = 0) -> str:
    settings = job_settings()
    with job_session(settings) as session:
        resource = _lock(session, settings, DEPROVISION_ACTION_JOB, resource_id, attempt, DEPROVISION_BACKOFF)
        if isinstance(resource, str):
            return resource
        if resource.state != DEPROVISIONED:
            return f"resource is {resource.state}"
        return _post_deprovision(session, settings, resource, attempt)
