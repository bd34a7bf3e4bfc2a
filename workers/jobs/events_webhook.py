"""`post_events(resource_id)`: POST a resource's pending delivery events to its events webhook.

Batches of at most `MAX_EVENTS_PER_POST` events, oldest first, each batch locked while it is
POSTed (FOR UPDATE SKIP LOCKED: two jobs never send one event) and marked sent only after the
endpoint answered 2xx, in the same transaction. Any other answer (a 3xx is not followed, a 4xx
or 5xx, a timeout, a refused connection) leaves the events pending, and the job schedules its
next attempt (`WEBHOOK_BACKOFF`, longer when the endpoint sends Retry-After). When that runs
out the resource rests for `REST_AFTER_GIVING_UP`, then the sweep starts a new chain: events
are never dropped, an endpoint that comes back after a day gets everything in order.

The periodic sweep (workers/jobs/sweep.py) enqueues the job for every resource with pending
events and a webhook (so events arrive within about `SWEEP_INTERVAL` seconds), unless the
resource's mark says a job or a retry is already pending; it also clears the pending flag of
events whose resource has no webhook (`events_webhook.clear_unwanted`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import requests
from redis import RedisError
from sqlalchemy.orm import Session

from provider.inbound.signature import HEADER, sign
from provider.models import Resource
from provider.services.events_webhook import (
    mark_sent,
    pending_batch,
    signing_secret,
    webhook_url,
)
from provider.settings import Settings
from provider.tasks import DEFAULT_QUEUE, POST_EVENTS_JOB, Job, enqueue_once, redis_connection
from provider.tasks import milliseconds as _ms
from workers.context import job_session, job_settings
from workers.jobs.logs import Drain
from workers.retry import Backoff, schedule

log = logging.getLogger(__name__)

WEBHOOK_BACKOFF = Backoff((10.0, 30.0, 120.0, 600.0, 1800.0, 3600.0))
REST_AFTER_GIVING_UP = timedelta(hours=1)
MAX_POSTS_PER_JOB = 50
"""A job sends at most this many batches, then hands the rest to a new job (short jobs keep a
warm shutdown short and let other resources' jobs in between)."""
MARK_TTL = timedelta(minutes=10)
"""How long a job's mark outlives it at most (a worker killed mid-job): longer than a job takes."""
TIMEOUT = (3.05, 10.0)
USER_AGENT = "CloudMailin-Events/1"


def mark_key(resource_id: str) -> str:
    return f"cloudmailin:events_webhook:{resource_id}"


def enqueue_posting(settings: Settings, resource_id: str) -> bool:
    """Enqueue the resource's job unless one (or its retry) is pending; never raises."""
    try:
        return enqueue_once(settings.redis_url, mark_key(resource_id), MARK_TTL,
                            Job(POST_EVENTS_JOB, (resource_id,), queue=DEFAULT_QUEUE))
    except RedisError:
        log.warning("could not enqueue the events webhook job of resource %s", resource_id, exc_info=True)
        return False


class EndpointFailed(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class Outcome:
    sent: int = 0
    posts: int = 0
    more: bool = False
    failure: EndpointFailed | None = None


def post_batch(http: requests.Session, endpoint: Drain, secret: str | None, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if secret is not None:
        headers[HEADER] = sign(secret, body, int(time.time()))
    try:
        response = http.post(endpoint.url, data=body, headers=headers, auth=endpoint.auth,
                             timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        raise EndpointFailed(f"{type(exc).__name__}") from exc
    if not 200 <= response.status_code < 300:
        retry_after = response.headers.get("Retry-After", "")
        raise EndpointFailed(
            f"HTTP {response.status_code}", float(retry_after) if retry_after.isdigit() else None
        )


def post_pending(session: Session, settings: Settings, resource_id: str) -> Outcome:
    """Send pending events batch by batch, committing after each; stops at the first failure."""
    outcome = Outcome()
    resource = session.get(Resource, resource_id)
    url = webhook_url(settings, resource) if resource is not None else None
    if url is None:
        return outcome  # set no more: the sweep clears these events' flags
    endpoint = Drain.parse(url)
    secret = signing_secret(settings, session, resource_id)
    with requests.Session() as http:
        http.trust_env = False  # no proxy from the environment between us and the app
        for _ in range(MAX_POSTS_PER_JOB):
            batch = pending_batch(session, resource_id)
            if batch is None:
                session.rollback()
                return outcome
            if batch.body["events"]:
                try:
                    post_batch(http, endpoint, secret, json.dumps(batch.body).encode())
                except EndpointFailed as exc:
                    session.rollback()
                    outcome.failure = exc
                    return outcome
                outcome.posts += 1
                outcome.sent += len(batch.body["events"])
            mark_sent(session, batch.ids)
            session.commit()
    outcome.more = True
    return outcome


def post_events(resource_id: str, attempt: int = 0) -> str:
    """The job. `attempt` counts the retries of this chain."""
    settings = job_settings()
    with job_session(settings) as session:
        outcome = post_pending(session, settings, resource_id)
    redis = redis_connection(settings.redis_url)
    if outcome.failure is None:
        redis.delete(mark_key(resource_id))
        if outcome.more:
            enqueue_posting(settings, resource_id)
        return f"sent {outcome.sent} events in {outcome.posts} posts"
    delay = WEBHOOK_BACKOFF.delay(attempt, outcome.failure.retry_after)
    if delay is None:
        log.warning("events webhook of resource %s failed %d times (%s); trying again in %s",
                    resource_id, attempt + 1, outcome.failure, REST_AFTER_GIVING_UP)
        redis.set(mark_key(resource_id), "1", px=_ms(REST_AFTER_GIVING_UP))
        return f"sent {outcome.sent}; resting after {attempt + 1} failures: {outcome.failure}"
    redis.set(mark_key(resource_id), "1", px=_ms(MARK_TTL + delay))
    schedule(settings, DEFAULT_QUEUE, POST_EVENTS_JOB, (resource_id, attempt + 1), delay)
    return f"sent {outcome.sent}; retrying in {delay.total_seconds():.0f}s: {outcome.failure}"
