"""Rotating a resource's SMTP/API key from the dashboard, and what the page shows of its keys.

`credentials.rotate` issues the new credential and gives the old ones a grace period
(`expires_at`, which `authenticate` honours). The app only learns the new key from its config
var, so the rotation also hands the new `CLOUDMAILIN_SMTP_URL` to Heroku: an RQ job
(`workers.jobs.config_push.push_config`) enqueued after the commit PATCHes the add-on's config
through the platform API, retrying while Heroku is down. The job reads the config afresh each
run, so a repeat (or two rotations in a row) sends the newest values and nothing else. The grace
period is what makes the asynchronous push safe: until it ends the app's old URL still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from ..crypto import box_for
from ..jobs import PROVISIONING_QUEUE, PUSH_CONFIG_JOB, Job, queue_for
from ..models import Resource
from ..models.base import utcnow
from ..settings import Settings
from . import applog, applog_lines, credentials

SHOWN_KEY_CHARS = 4
"""How much of the current key the page shows: enough to tell two keys apart, no more."""


@dataclass(frozen=True)
class RetiringKey:
    username: str
    expires_at: datetime


@dataclass(frozen=True)
class KeySummary:
    """The credentials as the dashboard shows them: never a whole key."""

    username: str | None
    masked_key: str | None
    retiring: tuple[RetiringKey, ...]


def masked(key: str) -> str:
    return "•" * 12 + key[-SHOWN_KEY_CHARS:]


def key_summary(settings: Settings, resource: Resource, *, now: datetime | None = None) -> KeySummary:
    """The live credential (masked) and the old ones still in their grace period, soonest first."""
    now = now or utcnow()
    current = credentials.current_credential(resource)
    shown = None
    if current is not None and current.key_enc is not None:
        shown = masked(box_for(settings).decrypt(current.key_enc))
    retiring = sorted(
        (
            RetiringKey(c.username, c.expires_at)
            for c in resource.credentials
            if c.revoked_at is None and c.expires_at is not None and c.expires_at > now
        ),
        key=lambda r: r.expires_at,
    )
    return KeySummary(current.username if current else None, shown, tuple(retiring))


def rotate_key(
    session: Session,
    settings: Settings,
    resource: Resource,
    *,
    grace: timedelta = credentials.ROTATION_GRACE,
    now: datetime | None = None,
) -> credentials.IssuedCredential:
    """Issue a new key, keep the old one working for `grace`, log it, and push the config once
    the caller commits. The caller holds the resource row locked (`oauth_tokens.lock_resource`)
    so two rotations at once cannot both retire the same credential."""
    now = now or utcnow()
    pair = credentials.rotate(session, settings, resource, grace=grace, now=now)
    session.flush()
    ends = (now + grace).strftime("%Y-%m-%dT%H:%M:%SZ")
    applog.record(
        session, settings, resource.id,
        applog_lines.key_rotated(pair.username, ends),
    )
    queue_for(settings).enqueue_after_commit(
        session, Job(PUSH_CONFIG_JOB, (resource.id,), queue=PROVISIONING_QUEUE)
    )
    return pair
