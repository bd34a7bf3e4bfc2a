"""POST /api/v0.1/<username>/messages: stored before 202, refused with {status, error} otherwise."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from email import message_from_bytes, policy

import psycopg
import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from provider import create_app
from provider.db import libpq_url
from provider.models import OutboundMessage, OutboundRecipient, Suppression
from provider.plans import PLANS
from provider.settings import Settings
from provider.tasks import DELIVER_JOB, OUTBOUND_QUEUES

from .conftest import SENDING_DOMAIN, Account, new_account

MESSAGE = {
    "from": f"Shop <orders@{SENDING_DOMAIN}>",
    "to": ["ann@example.com", "Bo <bo@example.org>"],
    "cc": "cy@example.com",
    "subject": "Your order",
    "plain": "Thanks!",
    "html": "<p>Thanks!</p>",
    "tags": "orders,receipts",
    "headers": {"X-Order": "42"},
    "attachments": [
        {"file_name": "r.txt", "content": base64.b64encode(b"receipt").decode(), "content_type": "text/plain"}
    ],
}


def _post(client: FlaskClient, account: Account, body: object, **headers: str):
    return client.post(account.path(), json=body, headers={**account.auth, **headers})


def test_a_message_is_stored_with_its_recipients_and_answered_202_with_the_echoed_fields(
    client: FlaskClient, account: Account, db_session: Session, redis: Redis
) -> None:
    response = _post(client, account, MESSAGE)
    assert response.status_code == 202, response.json
    body = response.json
    message_id = uuid.UUID(body["id"])
    assert message_id.version == 4
    assert body == {
        "id": str(message_id),
        "from": "Shop <orders@shop.example>",
        "to": ["ann@example.com", "Bo <bo@example.org>"],
        "cc": ["cy@example.com"],
        "subject": "Your order",
        "tags": ["orders", "receipts", "api"],
        "test_mode": False,
    }
    stored = db_session.get(OutboundMessage, message_id)
    assert stored is not None and stored.resource_id == account.resource_id
    assert [(r.address, r.domain, r.state) for r in stored.recipients] == [
        ("ann@example.com", "example.com", "queued"),
        ("bo@example.org", "example.org", "queued"),
        ("cy@example.com", "example.com", "queued"),
    ]
    sent = message_from_bytes(stored.raw, policy=policy.default)
    assert sent["X-Order"] == "42" and sent["Message-ID"] == f"<{message_id}@shop.example>"
    assert b"\r\n" in stored.raw and b"\n" not in stored.raw.replace(b"\r\n", b"")
    (job,) = Queue(OUTBOUND_QUEUES["standard"], connection=redis).get_jobs()
    assert (job.func_name, job.args, job.id) == (DELIVER_JOB, (str(message_id),), f"deliver-{message_id}")


def test_the_priority_picks_the_queue(client: FlaskClient, account: Account, redis: Redis) -> None:
    response = _post(client, account, {**MESSAGE, "priority": "priority"})
    assert response.status_code == 202
    assert [j.id for j in Queue(OUTBOUND_QUEUES["priority"], connection=redis).get_jobs()] == [
        f"deliver-{response.json['id']}"
    ]


def test_the_status_of_a_message_lists_each_recipient_and_its_events(
    client: FlaskClient, account: Account
) -> None:
    message_id = _post(client, account, MESSAGE).json["id"]
    status = client.get(account.path(f"messages/{message_id}"), headers=account.auth)
    assert status.status_code == 200
    assert status.json["id"] == message_id and status.json["source"] == "api"
    first = status.json["recipients"][0]
    assert (first["address"], first["state"], first["attempts"]) == ("ann@example.com", "queued", 0)
    assert [event["state"] for event in first["events"]] == ["queued"]


def test_another_accounts_message_or_a_malformed_id_is_404(
    client: FlaskClient, account: Account, db_session: Session, settings: Settings
) -> None:
    message_id = _post(client, account, MESSAGE).json["id"]
    other = new_account(db_session, settings, domain="other.example")
    for path in (f"messages/{message_id}", "messages/not-a-uuid", f"messages/{uuid.uuid4()}"):
        response = client.get(other.path(path), headers=other.auth)
        assert (response.status_code, response.json["status"]) == (404, 404)


def test_test_mode_validates_and_records_without_queueing(
    client: FlaskClient, account: Account, db_session: Session, redis: Redis
) -> None:
    response = _post(client, account, {**MESSAGE, "test_mode": True, "from": "x@unverified.example"})
    assert response.status_code == 202 and response.json["test_mode"] is True
    states = db_session.scalars(select(OutboundRecipient.state)).all()
    assert states == ["test", "test", "test"]
    assert Queue(OUTBOUND_QUEUES["standard"], connection=redis).count == 0


def test_a_suppressed_recipient_is_recorded_and_not_attempted(
    client: FlaskClient, account: Account, db_session: Session
) -> None:
    db_session.add(Suppression(resource_id=account.resource_id, address="bo@example.org", reason="550 5.1.1"))
    db_session.commit()
    message_id = _post(client, account, MESSAGE).json["id"]
    rows = db_session.scalars(
        select(OutboundRecipient).where(OutboundRecipient.message_id == uuid.UUID(message_id))
    ).all()
    assert {r.address: r.state for r in rows} == {
        "ann@example.com": "queued", "bo@example.org": "suppressed", "cy@example.com": "queued"
    }


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"plain": None, "html": None}, 422, "body not found"),
        ({"to": [f"r{i}@example.com" for i in range(21)], "cc": None}, 422, "at most 20"),
        ({"attachments": [{"file_name": "x.vbs", "content": ""}]}, 422, ".vbs files may not be sent"),
        ({"headers": {"X-A": "a\r\nBcc: x@example.com"}}, 422, "carriage returns or line feeds"),
        ({"attachments": [{"file_name": "a.txt", "content": "%%%"}]}, 422, "not valid base64"),
        ({"priority": "asap"}, 422, "priority must be one of"),
        ({"to": {"ann": "x"}}, 422, "to must be a string or a list"),
        ({"from": "orders@not-mine.example"}, 422, "Sending from not-mine.example is not allowed"),
        ({"raw": "From: a@shop.example\r\nTo: z@example.com\r\n\r\nx", "plain": None, "html": None,
          "attachments": None, "headers": None, "from": "orders@shop.example"}, 422,
         "From header does not match"),
        ({"raw": "From: orders@shop.example\r\nTo: ann@example.com\r\n\r\nx", "plain": None, "html": None,
          "attachments": None, "from": "orders@shop.example", "to": "ann@example.com", "cc": None}, 422,
         "headers cannot be combined with raw: put them in the raw message"),
    ],
)
def test_each_refusal_is_json_with_the_documented_text_and_stores_nothing(
    client: FlaskClient, account: Account, db_session: Session, change: dict, status: int, text: str
) -> None:
    response = _post(client, account, {**MESSAGE, **change})
    assert response.status_code == status
    assert response.json["status"] == status and text in response.json["error"]
    assert db_session.scalar(select(OutboundMessage.id)) is None


def test_a_body_that_is_not_json_is_refused(client: FlaskClient, account: Account) -> None:
    response = client.post(account.path(), data=b"{not json", headers={**account.auth,
                                                                        "Content-Type": "application/json"})
    assert response.status_code == 422 and "JSON object" in response.json["error"]


def test_a_wrong_key_or_user_is_401(client: FlaskClient, account: Account) -> None:
    wrong = dataclasses.replace(account, key="0" * 40)
    assert _post(client, wrong, MESSAGE).json == {"status": 401, "error": "Unauthorized"}
    stranger = dataclasses.replace(account, username="nobody")
    assert _post(client, stranger, MESSAGE).status_code == 401


def test_the_monthly_outbound_count_of_the_plan_is_a_429_naming_the_limit(
    client: FlaskClient, db_session: Session, settings: Settings
) -> None:
    account = new_account(db_session, settings, plan="free")
    limit = PLANS["free"].outbound_per_month
    db_session.execute(
        text("INSERT INTO usage (resource_id, period, inbound, outbound) "
             "VALUES (:r, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 0, :n)"),
        {"r": account.resource_id, "n": limit - 1},
    )
    db_session.commit()
    assert _post(client, account, MESSAGE).status_code == 202
    refused = _post(client, account, MESSAGE)
    assert refused.status_code == 429
    assert "free plan" in refused.json["error"] and f"{limit:,}" in refused.json["error"]


def test_with_verification_off_any_domain_may_send(db_session: Session, settings: Settings) -> None:
    account = new_account(db_session, settings, domain=None)
    client = create_app(dataclasses.replace(settings, sending_domain_verification=False)).test_client()
    assert _post(client, account, MESSAGE).status_code == 202


def test_a_send_not_yet_committed_does_not_hold_the_accounts_usage_row(
    account: Account, db_session: Session, settings: Settings
) -> None:
    from provider.models import Resource
    from provider.outbound.outgoing import from_api
    from provider.outbound.request import read_request
    from provider.services.sending import SendingPolicy, accept, new_message_id

    resource = db_session.get(Resource, account.resource_id)
    assert resource is not None
    message_id = new_message_id()
    outgoing = from_api(read_request(MESSAGE), str(message_id))
    accept(db_session, SendingPolicy(True), resource, outgoing, message_id, wake=lambda s, m: None)
    # The message's transaction is still open; another send of the account must not wait for it.
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as other:
        counted = other.execute(
            "SELECT outbound FROM usage WHERE resource_id = %s FOR UPDATE NOWAIT", (account.resource_id,)
        ).fetchone()
    assert counted == (1,)
    db_session.commit()
    assert db_session.get(OutboundMessage, message_id) is not None


def test_a_send_takes_no_second_connection_from_its_sessions_pool(
    account: Account, settings: Settings
) -> None:
    """The web's pools have no overflow: a second connection per request would deadlock them."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session as OrmSession

    from provider.models import Resource
    from provider.outbound.outgoing import from_api
    from provider.outbound.request import read_request
    from provider.services.sending import SendingPolicy, accept, new_message_id
    from provider.settings import normalise_database_url

    one = create_engine(normalise_database_url(settings.database_url), pool_size=1, max_overflow=0,
                        pool_timeout=2)
    try:
        with OrmSession(one) as session:
            resource = session.get(Resource, account.resource_id)  # the pool's only connection
            assert resource is not None
            message_id = new_message_id()
            outgoing = from_api(read_request(MESSAGE), str(message_id))
            accept(session, SendingPolicy(True), resource, outgoing, message_id, wake=lambda s, m: None)
            session.commit()
            assert session.get(OutboundMessage, message_id) is not None
    finally:
        one.dispose()
