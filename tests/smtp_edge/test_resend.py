"""Re-sending a kept message through the API: a real edge with the message store on SeaweedFS, a
real HTTP target, the job run by RQ's SimpleWorker against the real Redis and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker
from sqlalchemy.orm import Session

from dev.services import S3Server
from provider.models import InboundMessage
from provider.services.resend import NOT_KEPT
from provider.settings import Settings
from provider.tasks import DEFAULT_QUEUE, redis_connection
from tests.conftest import STORE_BUCKET
from tests.job_settings import settings_in_use

from .conftest import EdgeThread, Mailbox, Target, history, message, send
from .test_address_changes import Api, _api
from .test_stores import NOTES, PDF, form_fields, read_back, stored_mailbox, with_attachments

__all__ = ["stored_mailbox"]  # the fixture, used by name below

StoredMailbox = Callable[..., tuple[Mailbox, str]]


def resend(api: Api, row_id: int) -> Any:
    return api.client.post(
        f"/api/v0.1/{api.credential.username}/incoming_messages/{row_id}/resend",
        headers={"Authorization": f"Bearer {api.credential.key}"},
    )


def run_jobs(settings: Settings) -> None:
    """What the `worker` process does: take the queued jobs and run them, here until none is left."""
    connection = redis_connection(settings.redis_url)
    with settings_in_use(settings):
        SimpleWorker([Queue(DEFAULT_QUEUE, connection=connection)], connection=connection).work(
            burst=True, with_scheduler=False
        )


def test_a_kept_message_resent_after_a_format_change_arrives_in_the_new_format_linked_to_the_first(
    edge: EdgeThread, target: Target, stored_mailbox: StoredMailbox, s3_server: S3Server,
    client: FlaskClient, db_session: Session, settings: Settings,
) -> None:
    box, _ = stored_mailbox(fmt="json", messages=True)
    raw = with_attachments()
    send(edge, [box.address], raw)
    (first_post,) = target.requests
    first_payload = json.loads(first_post.body)
    (first,) = history(db_session)
    assert first.stored_message_key is not None  # the edge recorded where the message went
    assert read_back(s3_server, first_payload["envelope"]["store_url"]) == raw
    api = _api(client, edge, box, db_session, settings)
    api.patch(format="multipart")

    answer = resend(api, first.id)

    assert answer.status_code == 202, answer.get_json()
    queued = answer.get_json()
    assert (queued["status"], queued["resent_from_id"]) == ("resend_queued", first.id)
    run_jobs(settings)
    _, second = history(db_session)
    assert second.id == queued["id"] and second.resent_from_id == first.id
    assert (second.status, second.http_status) == ("201", 201)
    assert second.smtp_reply.startswith("250 ")
    assert (second.message_id, second.subject) == (first.message_id, first.subject)
    _, second_post = target.requests
    assert second_post.header("content-type") or "".startswith("multipart/form-data")
    fields = form_fields(second_post)
    named = dict(fields)
    assert named["headers[subject]"] == b"Invoice"
    assert named["plain"].decode().strip() == first_payload["plain"].strip()
    assert named["envelope[from]"].decode() == first_payload["envelope"]["from"]
    assert named["envelope[helo_domain]"] == b"client.example"
    assert named["envelope[store_url]"].decode() == first_payload["envelope"]["store_url"]
    urls = [value.decode() for name, value in fields if name == "attachments[][url]"]
    assert [read_back(s3_server, url) for url in urls] == [PDF, NOTES]
    assert second_post.header("x-cloudmailin-signature")
    # A new delivery: a target dropping repeats by this id keeps the re-send.
    assert second_post.header("x-cloudmailin-delivery-id") != first_post.header("x-cloudmailin-delivery-id")


def test_a_resent_message_shows_its_link_in_incoming_statuses(
    edge: EdgeThread, target: Target, stored_mailbox: StoredMailbox, client: FlaskClient,
    db_session: Session, settings: Settings,
) -> None:
    box, _ = stored_mailbox(messages=True)
    send(edge, [box.address], message())
    (first,) = history(db_session)
    api = _api(client, edge, box, db_session, settings)
    assert resend(api, first.id).status_code == 202
    run_jobs(settings)

    listed = client.get(
        f"/api/v0.1/{api.credential.username}/incoming_statuses",
        headers={"Authorization": f"Bearer {api.credential.key}"},
    ).get_json()["incoming_statuses"]

    assert [(row["id"], row["resent_from_id"]) for row in listed] == [
        (listed[0]["id"], first.id), (first.id, None)
    ]
    assert listed[0]["status"] == "201"
    assert len(target.requests) == 2


def test_a_message_the_store_did_not_keep_answers_409_saying_why_and_records_nothing(
    edge: EdgeThread, target: Target, stored_mailbox: StoredMailbox, client: FlaskClient,
    db_session: Session, settings: Settings,
) -> None:
    box, _ = stored_mailbox(messages=False)  # attachments only
    send(edge, [box.address], message())
    (first,) = history(db_session)
    assert first.stored_message_key is None
    api = _api(client, edge, box, db_session, settings)

    answer = resend(api, first.id)

    assert answer.status_code == 409
    assert answer.get_json() == {"status": 409, "error": NOT_KEPT}
    assert "turn on the message store" in NOT_KEPT
    assert len(history(db_session)) == 1
    assert len(target.requests) == 1


def test_another_accounts_message_and_an_unknown_id_are_404(
    edge: EdgeThread, target: Target, stored_mailbox: StoredMailbox, client: FlaskClient,
    db_session: Session, settings: Settings,
) -> None:
    theirs, _ = stored_mailbox(messages=True)
    mine, _ = stored_mailbox(messages=True)
    send(edge, [theirs.address], message())
    (their_row,) = history(db_session)
    api = _api(client, edge, mine, db_session, settings)

    for row_id in (their_row.id, their_row.id + 1000, 2**70):
        answer = resend(api, row_id)
        assert answer.status_code == 404, row_id
        assert answer.get_json() == {"status": 404, "error": "No such message"}
    assert len(history(db_session)) == 1
    assert resend(api, "abc").status_code == 404  # type: ignore[arg-type]


def test_a_kept_message_deleted_from_the_store_is_recorded_as_store_error_and_not_posted(
    edge: EdgeThread, target: Target, stored_mailbox: StoredMailbox, s3_server: S3Server,
    client: FlaskClient, db_session: Session, settings: Settings,
) -> None:
    box, _ = stored_mailbox(messages=True)
    send(edge, [box.address], message())
    (first,) = history(db_session)
    boto3.client(
        "s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1",
        aws_access_key_id=s3_server.access_key_id, aws_secret_access_key=s3_server.secret_access_key,
    ).delete_object(Bucket=STORE_BUCKET, Key=first.stored_message_key)
    api = _api(client, edge, box, db_session, settings)

    assert resend(api, first.id).status_code == 202
    run_jobs(settings)

    _, second = history(db_session)
    assert second.status == "store_error" and second.resent_from_id == first.id
    assert second.response_body is not None and "NoSuchKey" in second.response_body
    assert len(target.requests) == 1


def test_a_queued_resend_runs_once_even_if_its_job_runs_twice(
    edge: EdgeThread, target: Target, stored_mailbox: StoredMailbox, client: FlaskClient,
    db_session: Session, settings: Settings,
) -> None:
    from workers.jobs.resend import resend_message

    box, _ = stored_mailbox(messages=True)
    send(edge, [box.address], message())
    (first,) = history(db_session)
    api = _api(client, edge, box, db_session, settings)
    row_id = resend(api, first.id).get_json()["id"]
    run_jobs(settings)

    with settings_in_use(settings):
        assert resend_message(row_id) == "nothing to do"

    assert len(target.requests) == 2
    assert db_session.get(InboundMessage, row_id) is not None


def test_a_resend_whose_job_was_lost_is_enqueued_again_by_the_sweep(
    edge: EdgeThread, target: Target, stored_mailbox: StoredMailbox, client: FlaskClient,
    db_session: Session, settings: Settings,
) -> None:
    from datetime import UTC, datetime, timedelta

    from workers.jobs.sweep import RESEND_STUCK_AFTER, sweep_once

    box, _ = stored_mailbox(messages=True)
    send(edge, [box.address], message())
    (first,) = history(db_session)
    api = _api(client, edge, box, db_session, settings)
    row_id = resend(api, first.id).get_json()["id"]
    redis_connection(settings.redis_url).flushdb()  # the job is lost with Redis's data

    now = datetime.now(UTC)
    assert sweep_once(db_session, settings, now=now)["resends"] == 0  # too recent to be lost
    later = now + RESEND_STUCK_AFTER + timedelta(seconds=1)
    assert sweep_once(db_session, settings, now=later)["resends"] == 1
    run_jobs(settings)

    db_session.expire_all()
    row = db_session.get(InboundMessage, row_id)
    assert row is not None and row.status == str(first.http_status) and len(target.requests) == 2
