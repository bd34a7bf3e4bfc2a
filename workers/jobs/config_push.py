"""`push_config(resource_id)`: send the resource's current config vars to Heroku after a key rotation.

Enqueued after the rotation commits (`services.key_rotation`). Each run locks the resource row
(a run that finds it held comes back later), reads the config afresh and PATCHes it, so running
twice, or after a second rotation, sends the newest values and is harmless. Temporary platform
failures reschedule the job (`workers.retry`) within the grace period of the old key; a
permanent refusal, or running out of attempts, is logged and told to the app's log, since the
app keeps its old key only until the grace period ends.
"""

from __future__ import annotations

import logging

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from provider.heroku_platform import (
    PermanentPlatformError,
    PlatformAPI,
    PlatformError,
    TemporaryPlatformError,
)
from provider.jobs import PUSH_CONFIG_JOB
from provider.models import Resource
from provider.models.resource import PROVISIONED
from provider.services import applog, applog_lines, oauth_tokens
from provider.services.provisioning import config_for
from provider.settings import Settings
from provider.tasks import PROVISIONING_QUEUE
from workers.context import job_session, job_settings
from workers.retry import Backoff, schedule

log = logging.getLogger(__name__)

# About eight hours in all: well inside the 24 h the old key keeps working.
PUSH_BACKOFF = Backoff((5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0) + (3600.0,) * 6)


def push_config(resource_id: str, attempt: int = 0) -> str:
    settings = job_settings()
    with job_session(settings) as session:
        resource = oauth_tokens.lock_resource(session, resource_id, skip_locked=True)
        if resource is None:
            if not session.scalar(select(exists().where(Resource.id == resource_id))):
                return "resource gone"
            return _again(session, settings, resource_id, attempt, None, "resource busy")
        if resource.state != PROVISIONED:
            # Provisioning sends the config itself when it completes; a removed add-on has no app.
            return f"resource is {resource.state}"
        if not oauth_tokens.has_tokens(resource):
            log.warning("resource %s has no OAuth tokens: its new config cannot be sent", resource_id)
            return "no tokens for the config update"
        try:
            api = PlatformAPI(settings, oauth_tokens.access_token(session, settings, resource))
            api.update_config(resource.id, config_for(session, settings, resource))
        except TemporaryPlatformError as exc:
            session.commit()  # a refreshed access token is worth keeping
            return _again(session, settings, resource_id, attempt, exc, str(exc))
        except PermanentPlatformError as exc:
            session.rollback()
            return _give_up(session, settings, resource_id, exc)
        applog.record(session, settings, resource.id, applog_lines.config_pushed())
        session.commit()
        return "config updated"


def _again(session: Session, settings: Settings, resource_id: str, attempt: int,
           exc: TemporaryPlatformError | None, why: str) -> str:
    delay = PUSH_BACKOFF.delay(attempt, exc.retry_after if exc else None)
    if delay is None:
        return _give_up(session, settings, resource_id, exc or PlatformError(why))
    schedule(settings, PROVISIONING_QUEUE, PUSH_CONFIG_JOB, (resource_id, attempt + 1), delay)
    return f"retrying in {delay.total_seconds():.0f}s: {why}"


def _give_up(session: Session, settings: Settings, resource_id: str, reason: PlatformError) -> str:
    """The old key keeps working until its grace period ends; after that the app must be given
    it: rotating again from the dashboard pushes the config anew."""
    log.warning("config update for resource %s failed for good: %s", resource_id, reason)
    applog.record(session, settings, resource_id, applog_lines.config_push_failed())
    session.commit()
    return f"gave up: {reason}"
