"""Sending through SMTP submission with smtplib: what an authenticated session sends is stored in
PostgreSQL (one row per RCPT TO) and queued for delivery before the 250 names its id; the API's
limits and the account's rules refuse the rest with the reply each deserves."""

from __future__ import annotations

import base64
import os
import signal
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from sqlalchemy.orm import Session

from dev.services import start_redis
from provider.models import Resource, Usage
from provider.models.base import utcnow
from provider.models.outbound import QUEUED
from provider.models.resource import DEPROVISIONED
from provider.outbound.limits import MAX_MESSAGE_BYTES
from provider.plans import PLANS
from provider.services.usage import month_start
from provider.settings import Settings
from provider.tasks import OUTBOUND_QUEUES
from tests.outbound.conftest import new_account

from .conftest import EdgeThread
from .submitting import (
    FROM,
    SENDING_DOMAIN,
    Account,
    queued_id,
    stored,
    stored_count,
    submission_client,
    submit,
)


@pytest.fixture
def account(db_session: Session, settings: Settings) -> Account:
    return new_account(db_session, settings)


def mail(
    *, to: str = "Ann <ann@example.com>", extra: str = "", body: str = "Your order shipped.\r\n"
) -> bytes:
    return (
        f"From: {FROM}\r\nTo: {to}\r\nSubject: Order 42\r\n{extra}"
        f"Message-ID: <order-42@{SENDING_DOMAIN}>\r\n\r\n{body}"
    ).encode()


def test_a_submitted_message_is_stored_for_every_rcpt_and_the_250_carries_its_id(
    edge: EdgeThread, account: Account, db_session: Session, redis: Redis
) -> None:
    raw = mail(
        extra="Cc: bob@example.org\r\nBcc: hidden@example.net\r\n"
        "X-CloudMTA-Class: priority\r\nx-cloudmta-tags: receipts, june ,receipts\r\n"
    )
    recipients = ["ann@example.com", "bob@example.org", "hidden@example.net"]
    code, reply = submit(edge, account, recipients, raw)
    assert code == 250
    message_id = queued_id(reply)
    assert reply == f"Thanks! Queued as: {message_id}"
    message = stored(db_session, message_id)
    assert message.resource_id == account.resource_id
    assert message.source == "smtp"
    assert [r.address for r in message.recipients] == recipients
    assert {r.state for r in message.recipients} == {QUEUED}
    assert message.priority == "priority"
    assert message.tags == ["receipts", "june"]
    assert message.subject == "Order 42"
    head = message.raw.split(b"\r\n\r\n", 1)[0].lower()
    assert b"x-cloudmta" not in head
    assert b"bcc:" not in head and b"hidden@example.net" not in message.raw
    assert b"\r\nto: ann <ann@example.com>\r\n" in b"\r\n" + head + b"\r\n"
    assert message.raw.endswith(b"\r\n\r\nYour order shipped.\r\n")
    queue = Queue(OUTBOUND_QUEUES["priority"], connection=redis)
    assert f"deliver-{message_id}" in queue.job_ids


def test_the_queued_id_is_the_one_the_messages_api_shows(
    edge: EdgeThread, account: Account, client: FlaskClient
) -> None:
    raw = mail(extra="X-CloudMTA-Tags: api-check\r\n")
    code, reply = submit(edge, account, ["ann@example.com"], raw)
    assert code == 250
    message_id = queued_id(reply)
    shown = client.get(account.path(f"messages/{message_id}"), headers=account.auth)
    assert shown.status_code == 200, shown.get_data(as_text=True)
    body = shown.get_json()
    assert (body["id"], body["source"], body["tags"]) == (str(message_id), "smtp", ["api-check"])
    assert [(r["address"], r["state"]) for r in body["recipients"]] == [("ann@example.com", "queued")]


def test_messages_without_a_class_go_to_the_standard_queue_untagged(
    edge: EdgeThread, account: Account, db_session: Session, redis: Redis
) -> None:
    code, reply = submit(edge, account, ["ann@example.com"], mail())
    message = stored(db_session, queued_id(reply))
    assert (code, message.priority, message.tags) == (250, "standard", [])
    assert f"deliver-{message.id}" in Queue(OUTBOUND_QUEUES["standard"], connection=redis).job_ids


def test_two_messages_in_one_session_are_two_stored_messages(
    edge: EdgeThread, account: Account, db_session: Session
) -> None:
    with submission_client(edge, account) as client:
        ids = []
        for to in ("ann@example.com", "bob@example.org"):
            client.mail(f"orders@{SENDING_DOMAIN}")
            client.rcpt(to)
            code, reply = client.data(mail(to=to))
            assert code == 250
            ids.append(queued_id(reply.decode()))
    assert [stored(db_session, i).recipients[0].address for i in ids] == [
        "ann@example.com",
        "bob@example.org",
    ]


def test_mail_without_auth_is_refused_so_the_port_is_no_open_relay(
    edge: EdgeThread, account: Account, db_session: Session
) -> None:
    with submission_client(edge) as client:
        assert client.mail(f"orders@{SENDING_DOMAIN}") == (530, b"5.7.0 Authentication required")
        assert client.rcpt("ann@example.com")[0] == 530
        assert client.docmd("DATA")[0] == 530
    assert stored_count(db_session) == 0


def test_auth_before_starttls_is_refused_even_with_the_right_key(
    edge: EdgeThread, account: Account
) -> None:
    with smtplib.SMTP("127.0.0.1", edge.submission_port, local_hostname="app.example") as client:
        client.ehlo()
        assert not client.has_extn("auth")
        blob = base64.b64encode(f"\0{account.username}\0{account.key}".encode()).decode()
        assert client.docmd("AUTH", f"PLAIN {blob}") == (530, b"Must issue a STARTTLS command first")


def test_a_wrong_key_is_refused(edge: EdgeThread, account: Account) -> None:
    with submission_client(edge) as client, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.login(account.username, "0" * len(account.key))
    assert refused.value.smtp_code == 535


def test_the_21st_recipient_is_refused_and_the_twenty_are_sent(
    edge: EdgeThread, account: Account, db_session: Session
) -> None:
    recipients = [f"r{i}@example.com" for i in range(21)]
    with submission_client(edge, account) as client:
        client.mail(f"orders@{SENDING_DOMAIN}")
        for recipient in recipients[:20]:
            assert client.rcpt(recipient)[0] == 250
        assert client.rcpt(recipients[20]) == (452, b"4.5.3 Too many recipients in one transaction")
        code, reply = client.data(mail())
    assert code == 250
    message = stored(db_session, queued_id(reply.decode()))
    assert [r.address for r in message.recipients] == recipients[:20]


def test_an_address_that_cannot_be_delivered_to_is_refused_at_rcpt(
    edge: EdgeThread, account: Account
) -> None:
    with submission_client(edge, account) as client:
        client.mail(f"orders@{SENDING_DOMAIN}")
        code, text = client.rcpt("postmaster")
    assert (code, text[:5]) == (553, b"5.1.3")


def test_a_declared_size_over_10_mb_is_refused_at_mail(edge: EdgeThread, account: Account) -> None:
    with submission_client(edge, account) as client:
        assert client.has_extn("size") and client.esmtp_features["size"] == str(MAX_MESSAGE_BYTES)
        code, text = client.mail(f"orders@{SENDING_DOMAIN}", [f"SIZE={MAX_MESSAGE_BYTES + 1}"])
        assert (code, text[:5]) == (552, b"5.3.4")
        assert client.mail(f"orders@{SENDING_DOMAIN}", [f"SIZE={MAX_MESSAGE_BYTES}"])[0] == 250


def test_data_over_10_mb_is_refused_and_nothing_is_stored(
    edge: EdgeThread, account: Account, db_session: Session
) -> None:
    line = "x" * 998 + "\r\n"
    body = line * (MAX_MESSAGE_BYTES // len(line) + 10)
    code, reply = submit(edge, account, ["ann@example.com"], mail(body=body))
    assert (code, reply[:5]) == (552, "5.3.4")
    assert stored_count(db_session) == 0


def with_attachment(file_name: str | None, content_type: str = "application/octet-stream") -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = FROM, "ann@example.com", "Files"
    message.set_content("See attached.")
    maintype, subtype = content_type.split("/")
    message.add_attachment(b"MZ\x90\x00binary", maintype=maintype, subtype=subtype, filename=file_name)
    if file_name is None:
        del message.get_payload()[1]["Content-Disposition"]
    return message.as_bytes()


@pytest.mark.parametrize("file_name", ["setup.exe", "INVOICE.PDF.VBS", "très-long-nom.msi"])
def test_a_blocked_attachment_is_refused_after_data(
    edge: EdgeThread, account: Account, db_session: Session, file_name: str
) -> None:
    code, reply = submit(edge, account, ["ann@example.com"], with_attachment(file_name))
    extension = file_name.rpartition(".")[2].lower()
    assert (code, reply) == (
        550,
        f"5.7.1 Attachment {file_name!r} refused: .{extension} files may not be sent",
    )
    assert stored_count(db_session) == 0


@pytest.mark.parametrize("where", [
    "Subject: a\x00b\r\n\r\nThanks.\r\n",  # a header value: it could not be stored
    "Subject: ok\r\n\r\nThan\x00ks.\r\n",  # the body: no SMTP data holds one without BINARYMIME
])
def test_a_nul_character_anywhere_is_a_permanent_refusal_and_nothing_is_stored(
    edge: EdgeThread, account: Account, db_session: Session, where: str
) -> None:
    data = f"From: Shop <orders@{SENDING_DOMAIN}>\r\nTo: ann@example.com\r\n{where}".encode()
    code, reply = submit(edge, account, ["ann@example.com"], data)
    assert (code, reply) == (550, "5.6.0 The message may not contain NUL characters")
    assert stored_count(db_session) == 0


@pytest.mark.parametrize("file_name", ["report.pdf", None])
def test_other_attachments_and_unnamed_binary_parts_are_sent(
    edge: EdgeThread, account: Account, db_session: Session, file_name: str | None
) -> None:
    code, reply = submit(edge, account, ["ann@example.com"], with_attachment(file_name))
    assert code == 250, reply
    assert base64.b64encode(b"MZ\x90\x00binary") in stored(db_session, queued_id(reply)).raw


def test_a_from_domain_the_account_has_not_verified_is_refused(
    edge: EdgeThread, account: Account, db_session: Session
) -> None:
    raw = mail().replace(f"orders@{SENDING_DOMAIN}".encode(), b"ceo@bank.example")
    code, reply = submit(edge, account, ["ann@example.com"], raw)
    assert (code, reply) == (
        550,
        "5.7.1 Sending from bank.example is not allowed: "
        "add it as a sending domain and verify its DNS records",
    )
    assert stored_count(db_session) == 0


def test_the_monthly_quota_used_up_is_a_temporary_refusal(
    edge: EdgeThread, account: Account, db_session: Session, settings: Settings
) -> None:
    limit = PLANS["starter"].outbound_per_month
    db_session.add(
        Usage(resource_id=account.resource_id, period=month_start(utcnow()), inbound=0, outbound=limit)
    )
    db_session.commit()
    code, reply = submit(edge, account, ["ann@example.com"], mail())
    assert (code, reply[:5]) == (452, "4.2.2")
    assert "Monthly outbound limit of the starter plan reached" in reply
    assert stored_count(db_session) == 0


def test_a_resource_removed_after_auth_can_no_longer_send(
    edge: EdgeThread, account: Account, db_session: Session
) -> None:
    with submission_client(edge, account) as client:
        resource = db_session.get(Resource, account.resource_id)
        assert resource is not None
        resource.state = DEPROVISIONED
        db_session.commit()
        client.mail(f"orders@{SENDING_DOMAIN}")
        client.rcpt("ann@example.com")
        code, reply = client.data(mail())
    assert (code, reply[:5]) == (550, b"5.7.1")
    assert stored_count(db_session) == 0


def test_with_redis_out_of_reach_the_committed_message_still_gets_its_250(
    edge: EdgeThread, account: Account, db_session: Session,
) -> None:
    """The delivery worker's poller finds due recipients in PostgreSQL; the 250 must not wait for
    or fail on the job."""
    edge.restart(redis_url="unix:///nonexistent/cloudmailin-test/redis.sock")
    code, reply = submit(edge, account, ["ann@example.com"], mail())
    assert code == 250
    message = stored(db_session, queued_id(reply))
    assert [(r.state, r.next_attempt_at is not None) for r in message.recipients] == [(QUEUED, True)]


def test_a_stalled_redis_does_not_hold_the_250_of_a_committed_message(
    edge: EdgeThread, account: Account, db_session: Session, tmp_path: Path
) -> None:
    """A Redis that takes connections and never answers (SIGSTOP): the enqueue after the commit
    gives up after its bounded socket timeouts (`provider.tasks.redis_connection`) and the 250 is
    sent; the delivery worker's poller finds the queued recipient."""
    redis_url, redis = start_redis(tmp_path / "redis")
    assert Redis.from_url(redis_url, socket_timeout=10).ping()  # listening, not just bound
    edge.restart(redis_url=redis_url)
    os.kill(redis.pid, signal.SIGSTOP)
    try:
        code, reply = submit(edge, account, ["ann@example.com"], mail())  # smtplib's own deadline
    finally:
        os.kill(redis.pid, signal.SIGCONT)
        redis.terminate()
        redis.wait(timeout=30)
    assert code == 250
    assert [r.state for r in stored(db_session, queued_id(reply)).recipients] == [QUEUED]


def test_sending_domain_verification_off_lets_any_from_domain_send(
    edge: EdgeThread, db_session: Session, settings: Settings
) -> None:
    account = new_account(db_session, settings, domain=None)
    edge.restart(sending_domain_verification=False)
    raw = mail().replace(f"orders@{SENDING_DOMAIN}".encode(), b"dev@anything.example")
    code, reply = submit(edge, account, ["ann@example.com"], raw, sender="dev@anything.example")
    assert code == 250
    assert stored(db_session, queued_id(reply)).sender_domain == "anything.example"

