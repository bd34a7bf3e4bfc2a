"""`ship_logs(resource_id)`: post a resource's unshipped app log lines to its `log_input_url`;
`dispatch_shipping()`: turn the web and edge processes' shipping requests into those jobs.

Lines go in batches of octet-counted frames over one keep-alive connection, each batch marked
shipped in the same transaction that locked it (rows are taken FOR UPDATE SKIP LOCKED, so two
jobs for one resource never send a line twice). A failing endpoint fails nobody: on a temporary
failure the lines stay and the job reschedules itself (`LOG_BACKOFF`); when the policy runs out,
or the endpoint refuses the lines outright (4xx), they are deleted with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from provider import log_shipping_queue, logplex
from provider.heroku_platform import (
    PermanentPlatformError,
    TemporaryPlatformError,
    new_http_session,
    platform_error,
    transport_error,
)
from provider.models import AppLogLine, Resource
from provider.services import applog
from provider.settings import Settings
from provider.tasks import LOGS_QUEUE, SHIP_LOGS_JOB
from workers.context import job_session, job_settings
from workers.retry import Backoff, schedule

log = logging.getLogger(__name__)

BATCH = 200
DISPATCH_BATCH = 500
# Five retries over about 45 minutes, then the lines are dropped.
LOG_BACKOFF = Backoff((5.0, 30.0, 120.0, 600.0, 1800.0))
TIMEOUT = (3.05, 10.0)


@dataclass(frozen=True)
class Drain:
    """Where a resource's lines go: the URL without its userinfo, and the Basic credentials."""

    url: str
    auth: tuple[str, str] | None

    @classmethod
    def parse(cls, log_input_url: str) -> Drain:
        parts = urlsplit(log_input_url)
        auth = None
        if parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        return cls(urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), auth)


@dataclass
class Outcome:
    shipped: int = 0
    dropped: int = 0
    failure: TemporaryPlatformError | None = None


def post_lines(http: requests.Session, drain: Drain, lines: list[logplex.LogLine]) -> None:
    """One POST of a batch; raises the platform errors of `provider.heroku_platform`."""
    headers = {"Content-Type": logplex.CONTENT_TYPE, "Logplex-Msg-Count": str(len(lines))}
    try:
        response = http.post(
            drain.url, data=logplex.body(lines), headers=headers, auth=drain.auth,
            timeout=TIMEOUT, allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise transport_error(exc, "log drain") from exc
    if not 200 <= response.status_code < 300:
        raise platform_error(response, "log drain")


def _next_batch(session: Session, resource_id: str) -> list[AppLogLine]:
    return list(session.scalars(
        select(AppLogLine)
        .where(AppLogLine.resource_id == resource_id, AppLogLine.shipped_at.is_(None))
        .order_by(AppLogLine.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ))


def ship_pending(session: Session, settings: Settings, resource_id: str) -> Outcome:
    """Ship everything unshipped, batch by batch, committing after each; stops at the first
    temporary failure (lines stay) and drops batches the endpoint refuses for good."""
    outcome = Outcome()
    resource = session.get(Resource, resource_id)
    url = applog.log_input_url(settings, resource) if resource is not None else None
    if url is None:
        return outcome
    drain = Drain.parse(url)
    with new_http_session() as http:
        while batch := _next_batch(session, resource_id):
            try:
                post_lines(http, drain, [logplex.LogLine(line.created_at, line.message) for line in batch])
            except TemporaryPlatformError as exc:
                session.rollback()
                outcome.failure = exc
                return outcome
            except PermanentPlatformError as exc:
                log.warning("log drain of resource %s refused %d lines, dropping them: %s",
                            resource_id, len(batch), exc)
                for line in batch:
                    session.delete(line)
                outcome.dropped += len(batch)
            else:
                now = datetime.now(UTC)
                for line in batch:
                    line.shipped_at = now
                outcome.shipped += len(batch)
            session.commit()
    return outcome


def drop_unshipped(session: Session, resource_id: str, created_until: datetime) -> int:
    result = session.execute(
        delete(AppLogLine).where(
            AppLogLine.resource_id == resource_id,
            AppLogLine.shipped_at.is_(None),
            AppLogLine.created_at <= created_until,
        )
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def _has_unshipped(session: Session, resource_id: str) -> bool:
    return bool(session.scalar(select(exists().where(
        AppLogLine.resource_id == resource_id, AppLogLine.shipped_at.is_(None)
    ))))


def ship_logs(resource_id: str, attempt: int = 0, started: str | None = None) -> str:
    """The job. `attempt` counts retries of this chain; `started` (ISO time) is when its first
    attempt ran, so giving up drops only lines that every attempt of the chain tried to send."""
    settings = job_settings()
    chain_started = datetime.fromisoformat(started) if started else datetime.now(UTC)
    with job_session(settings) as session:
        outcome = ship_pending(session, settings, resource_id)
        if outcome.failure is None:
            log_shipping_queue.clear_mark(settings.redis_url, resource_id)
            # A line committed while this job ran saw the mark and enqueued nothing.
            if _has_unshipped(session, resource_id):
                log_shipping_queue.enqueue_shipping(settings.redis_url, resource_id)
            return f"shipped {outcome.shipped}, dropped {outcome.dropped}"
        delay = LOG_BACKOFF.delay(attempt, outcome.failure.retry_after)
        if delay is not None:
            log_shipping_queue.hold_mark(settings.redis_url, resource_id, delay)
            schedule(settings, LOGS_QUEUE, SHIP_LOGS_JOB,
                     (resource_id, attempt + 1, chain_started.isoformat()), delay)
            return f"shipped {outcome.shipped}; retrying in {delay.total_seconds():.0f}s: {outcome.failure}"
        dropped = drop_unshipped(session, resource_id, chain_started)
        log.warning("log drain of resource %s kept failing after %d attempts, dropped %d lines: %s",
                    resource_id, attempt + 1, dropped, outcome.failure)
        log_shipping_queue.clear_mark(settings.redis_url, resource_id)
        if _has_unshipped(session, resource_id):
            log_shipping_queue.enqueue_shipping(settings.redis_url, resource_id)
        return f"gave up, dropped {dropped}"


def dispatch_shipping() -> str:
    """The job `log_shipping_queue.request_shipping` enqueues: one per burst of requests, for all resources.
    It drains the set of resource ids that asked, enqueueing a shipping job for each that has
    none pending, until the set stays empty."""
    settings = job_settings()
    asked = enqueued = 0
    while True:
        ids = log_shipping_queue.take_pending(settings.redis_url, DISPATCH_BATCH)
        if ids:
            asked += len(ids)
            enqueued += sum(log_shipping_queue.enqueue_shipping(settings.redis_url, rid) for rid in ids)
        elif not log_shipping_queue.end_dispatch(settings.redis_url):
            return f"{asked} resources asked, {enqueued} shipping jobs enqueued"
