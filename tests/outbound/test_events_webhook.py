"""The events webhook: set through the API, fed by the sweep, POSTed by its job to a real HTTP
server on 127.0.0.1 in signed batches, retried until the endpoint answers 2xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, Response, request
from flask.testing import FlaskClient
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.crypto import SecretBox
from provider.inbound.signature import HEADER, verify_signature
from provider.models import Address, OutboundEvent, OutboundRecipient, Resource
from provider.models.base import utcnow
from provider.outbound.dsn import DeliveryReport, RecipientStatus
from provider.services.bounces import record_report
from provider.services.events_webhook import MAX_EVENTS_PER_POST
from provider.services.provisioning import deprovision
from provider.settings import Settings
from provider.tasks import DEFAULT_QUEUE, POST_EVENTS_JOB, redis_connection
from tests.heroku_standin.server import serve_wsgi
from tests.job_settings import settings_in_use
from workers.jobs.events_webhook import mark_key, post_events
from workers.jobs.sweep import sweep_once

from .conftest import SENDING_DOMAIN, Account, new_account
from .sent import sent_message


@dataclass
class Endpoint:
    url: str
    answers: list[int]
    """Status codes to answer, in order; the last one repeats."""
    posts: list[dict[str, Any]] = field(default_factory=list)

    def events(self, status: int = 200) -> list[dict[str, Any]]:
        return [e for p in self.posts if p["status"] == status for e in p["json"]["events"]]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    app = Flask("events")
    state = Endpoint("", [200])

    @app.post("/events")
    def events() -> Response:
        status = state.answers[min(len(state.posts), len(state.answers) - 1)]
        auth = request.authorization
        state.posts.append({
            "status": status, "body": request.get_data(), "json": request.get_json(),
            "signature": request.headers.get(HEADER),
            "auth": (auth.username, auth.password) if auth else None,
        })
        return Response("no" if status >= 300 else "ok", status=status)

    with serve_wsgi(app) as url:
        state.url = f"{url}/events"
        yield state


@pytest.fixture
def jobs(settings: Settings) -> Iterator[Settings]:
    with settings_in_use(settings):
        yield settings


def _with_webhook(client: FlaskClient, account: Account, url: str) -> None:
    response = client.put(account.path("events_webhook"), json={"url": url}, headers=account.auth)
    assert response.status_code == 200, response.json


def _secret(db_session: Session, settings: Settings, account: Account) -> str:
    addresses = select(Address).where(Address.resource_id == account.resource_id).order_by(Address.id)
    first = db_session.scalar(addresses)
    assert first is not None
    return SecretBox(settings.encryption_key).decrypt(first.signing_secret_enc)


def _pending(db_session: Session, account: Account) -> int:
    db_session.expire_all()
    return len(db_session.scalars(
        select(OutboundEvent.id).join(OutboundRecipient)
        .where(OutboundRecipient.resource_id == account.resource_id, OutboundEvent.webhook_pending)
    ).all())


def _extra_events(db_session: Session, account: Account, count: int) -> None:
    message_id = sent_message(db_session, account, ["many@remote.example"])
    row = db_session.scalar(select(OutboundRecipient).where(OutboundRecipient.message_id == message_id))
    assert row is not None
    now = utcnow()
    db_session.add_all(OutboundEvent(recipient_id=row.id, at=now, state="deferred", reply="451 4.7.1 later",
                                     webhook_pending=True) for _ in range(count - 1))
    db_session.commit()


def test_every_kind_of_event_arrives_signed_with_the_first_addresses_secret(
    client: FlaskClient, db_session: Session, settings: Settings, jobs: Settings, endpoint: Endpoint,
    account: Account,
) -> None:
    _with_webhook(client, account, endpoint.url.replace("http://", "http://app:s3cret@"))
    message_id = sent_message(db_session, account, ["ok@remote.example", "gone@remote.example",
                                                    "slow@remote.example"])
    gone = RecipientStatus("gone@remote.example", None, "failed", "5.1.1", "550 5.1.1 no such user", "smtp",
                           None)
    slow = RecipientStatus("slow@remote.example", None, "delayed", "4.4.1", None, None, None)
    record_report(db_session, message_id, DeliveryReport("mx.remote.example", (gone, slow)))
    db_session.commit()
    later = client.post(account.path("messages"), headers=account.auth, json={
        "from": f"orders@{SENDING_DOMAIN}", "to": "gone@remote.example", "subject": "Again", "plain": "Hi"})
    assert later.status_code == 202

    assert post_events(account.resource_id) == "sent 6 events in 1 posts"

    (post,) = endpoint.posts
    assert post["auth"] == ("app", "s3cret")
    secret = _secret(db_session, settings, account)
    assert verify_signature(secret, post["signature"], post["body"], 60, time.time())
    events = post["json"]["events"]
    assert [(e["kind"], e["recipient"]) for e in events] == [
        ("delivery", "ok@remote.example"), ("delivery", "gone@remote.example"),
        ("delivery", "slow@remote.example"), ("bounce", "gone@remote.example"),
        ("soft_bounce", "slow@remote.example"), ("suppressed", "gone@remote.example"),
    ]
    assert {e["message_id"] for e in events[:5]} == {str(message_id)}
    assert events[5]["message_id"] == later.json["id"]
    assert set(events[3]) == {"kind", "recipient", "message_id", "details"}
    assert events[3]["details"]["reply"] == "550 5.1.1 no such user"
    assert events[3]["details"]["state"] == "bounced" and events[3]["details"]["at"].endswith("Z")
    assert _pending(db_session, account) == 0
    assert post_events(account.resource_id) == "sent 0 events in 0 posts"
    assert len(endpoint.posts) == 1


def test_no_post_carries_more_than_the_batch_size(
    client: FlaskClient, db_session: Session, jobs: Settings, endpoint: Endpoint, account: Account
) -> None:
    _with_webhook(client, account, endpoint.url)
    _extra_events(db_session, account, 2 * MAX_EVENTS_PER_POST + 5)

    post_events(account.resource_id)

    assert [len(p["json"]["events"]) for p in endpoint.posts] == [MAX_EVENTS_PER_POST, MAX_EVENTS_PER_POST, 5]
    ids = [e["details"]["event_id"] for e in endpoint.events()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_failing_endpoint_gets_the_events_on_the_retry(
    client: FlaskClient, db_session: Session, jobs: Settings, endpoint: Endpoint, account: Account
) -> None:
    endpoint.answers = [500, 200]
    _with_webhook(client, account, endpoint.url)
    sent_message(db_session, account, ["ok@remote.example"])

    assert post_events(account.resource_id) == "sent 0; retrying in 10s: HTTP 500"

    assert _pending(db_session, account) == 1
    connection = redis_connection(jobs.redis_url)
    registry = ScheduledJobRegistry(queue=Queue(DEFAULT_QUEUE, connection=connection))
    (job_id,) = registry.get_job_ids()
    retry = Job.fetch(job_id, connection=connection)
    assert (retry.func_name, retry.args) == (POST_EVENTS_JOB, (account.resource_id, 1))
    assert connection.exists(mark_key(account.resource_id))  # the sweep leaves it to the retry

    assert post_events(*retry.args) == "sent 1 events in 1 posts"

    assert [p["status"] for p in endpoint.posts] == [500, 200]
    assert endpoint.posts[0]["json"] == endpoint.posts[1]["json"]
    assert _pending(db_session, account) == 0
    assert not connection.exists(mark_key(account.resource_id))


def test_the_sweep_enqueues_resources_with_a_webhook_and_clears_the_others_events(
    client: FlaskClient, db_session: Session, settings: Settings, endpoint: Endpoint, account: Account
) -> None:
    _with_webhook(client, account, endpoint.url)
    sent_message(db_session, account, ["ok@remote.example"])
    without = new_account(db_session, settings, domain="other.example")
    sent_message(db_session, without, ["ok@remote.example", "other@remote.example"], domain="other.example")

    counts = sweep_once(db_session, settings)

    assert (counts["events_webhooks"], counts["unwanted_events"]) == (1, 2)
    assert (_pending(db_session, account), _pending(db_session, without)) == (1, 0)
    queued = Queue(DEFAULT_QUEUE, connection=redis_connection(settings.redis_url)).jobs
    assert [(j.func_name, j.args) for j in queued if j.func_name == POST_EVENTS_JOB] == [
        (POST_EVENTS_JOB, (account.resource_id,))]
    assert sweep_once(db_session, settings)["events_webhooks"] == 0  # its job is still pending


def test_the_webhook_is_set_checked_masked_encrypted_and_removed(
    client: FlaskClient, db_session: Session, account: Account
) -> None:
    path = account.path("events_webhook")
    assert client.get(path, headers=account.auth).json == {"url": None}

    bad = client.put(path, json={"url": "ftp://example.com/x"}, headers=account.auth)
    assert bad.status_code == 422
    assert bad.json == {"status": 422, "error": "The target must be an absolute http:// or https:// URL."}
    assert client.put(path, json={"url": "https://e.example/x", "secret": 1}, headers=account.auth).json == {
        "status": 422, "error": "Unknown field 'secret'; the events webhook has only url."}
    assert client.put(path, data="nope", headers=account.auth).status_code == 422

    done = client.put(path, json={"url": "https://app:pw@e.example/events"}, headers=account.auth)
    assert done.json == {"url": "https://app:•••@e.example/events"}
    assert client.get(path, headers=account.auth).json == {"url": "https://app:•••@e.example/events"}
    db_session.expire_all()
    resource = db_session.get(Resource, account.resource_id)
    assert resource is not None and resource.events_webhook_url_enc is not None
    assert b"e.example" not in resource.events_webhook_url_enc

    assert client.delete(path, headers=account.auth).status_code == 204
    assert client.get(path, headers=account.auth).json == {"url": None}
    assert client.delete(path, headers=account.auth).status_code == 204
    assert client.get(path).status_code == 401




def test_deprovisioning_erases_the_webhook(
    client: FlaskClient, db_session: Session, settings: Settings, account: Account
) -> None:
    _with_webhook(client, account, "https://app:pw@e.example/events")

    assert deprovision(db_session, settings, account.resource_id)

    db_session.expire_all()
    resource = db_session.get(Resource, account.resource_id)
    assert resource is not None and resource.events_webhook_url_enc is None
