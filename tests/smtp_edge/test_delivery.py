"""Mail to a forward address arrives at the target as a POST, and the sender learns the verdict."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from provider.inbound import verify_signature

from .conftest import (
    SENDER,
    SENDER_DOMAIN,
    Conversation,
    EdgeThread,
    Mailbox,
    Target,
    history,
    message,
    send,
    smtp_error,
    talk,
)


def test_a_message_is_posted_as_json_and_the_target_code_is_recorded(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/201")
    tagged = box.address.replace("@", "+orders@")
    raw = message("Order 42", "Please ship it.\r\n")

    assert send(edge, [tagged], raw) == {}

    (post,) = target.requests
    assert post.method == "POST" and post.path == "/status/201"
    assert post.header("content-type") == "application/json"
    assert post.header("user-agent") == "CloudMailin Server"
    payload = json.loads(post.body)
    assert payload["headers"]["subject"] == "Order 42"
    assert payload["plain"] == "Please ship it.\n"
    assert payload["reply_plain"] is None  # not a reply
    envelope = payload["envelope"]
    assert envelope["to"] == tagged
    assert envelope["recipients"] == [tagged]
    assert envelope["from"] == SENDER
    assert envelope["helo_domain"] == "client.example"
    assert envelope["remote_ip"] == "127.0.0.1"
    assert envelope["spf"] == {"result": "pass", "domain": SENDER_DOMAIN}
    assert envelope["tls"] is False
    assert "tls_cipher" not in envelope
    (row,) = history(db_session)
    assert (row.status, row.http_status, row.resource_id, row.address_id) == (
        "201",
        201,
        box.resource_id,
        box.address_id,
    )
    assert row.envelope_to == tagged and row.recipients == [tagged]
    assert (
        row.subject == "Order 42" and row.message_id and row.message_id.endswith("@sender.example>")
    )
    assert row.size == len(raw) + 0 and row.spf_result == "pass" and row.remote_ip == "127.0.0.1"
    assert row.smtp_reply == "250 2.0.0 Message accepted by the target (HTTP 201)"
    assert row.response_body is None and row.target_ms is not None


def test_the_post_is_signed_with_the_address_secret(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    send(edge, [box.address], message())
    (post,) = target.requests
    signature = post.header("x-cloudmailin-signature")
    assert signature is not None
    signed_at = int(signature.split(",")[0].removeprefix("t="))
    assert verify_signature(box.signing_secret, signature, post.body, tolerance_s=0, now=signed_at)
    assert not verify_signature("another secret", signature, post.body, tolerance_s=0, now=signed_at)
    assert not verify_signature(box.signing_secret, signature, post.body + b" ", tolerance_s=0, now=signed_at)


def test_credentials_in_the_target_url_become_basic_auth_and_leave_the_request_line(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/200", userinfo="user:p%40ss%3Aword")
    send(edge, [box.address], message())
    (post,) = target.requests
    assert post.path == "/status/200"
    expected = base64.b64encode(b"user:p@ss:word").decode()
    assert post.header("authorization") == f"Basic {expected}"
    (row,) = history(db_session)
    assert (
        row.target_url is not None
        and "p%40ss" not in row.target_url
        and "p@ss" not in row.target_url
    )


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_are_followed_by_posting_the_same_body_again(
    code: int,
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    db_session: Session,
) -> None:
    box = mailbox(f"/redirect?code={code}&to=/status/201")
    send(edge, [box.address], message())
    first, second = target.requests
    assert (first.method, second.method) == ("POST", "POST")
    assert second.path == "/status/201"
    assert second.body == first.body
    assert second.header("x-cloudmailin-signature") == first.header("x-cloudmailin-signature")
    assert history(db_session)[0].status == "201"


def test_three_redirects_are_followed_but_a_fourth_is_a_temporary_failure(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/loop")
    code, text = smtp_error(edge, [box.address], message())
    assert (code, text) == (450, "4.4.6 Target redirected more than 3 times; try again later")
    assert len(target.requests) == 4
    (row,) = history(db_session)
    assert (row.status, row.http_status) == ("302", 302)


def test_a_4xx_answer_is_a_permanent_refusal_quoting_the_first_line_of_a_plain_text_body(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/403?reason=Unknown%20sender%20%07%C3%A9t%C3%A9%20%E2%98%83")
    code, text = smtp_error(edge, [box.address], message())
    assert code == 550
    assert text == "5.0.0 Target rejected the message (HTTP 403): Unknown sender ete ?"
    (row,) = history(db_session)
    assert (row.status, row.http_status) == ("403", 403)
    assert row.response_body == "Unknown sender \x07été ☃\nsecond line is not shown\n"
    assert row.smtp_reply == "550 " + text


def test_a_404_reason_is_cut_at_400_characters(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/404?reason=" + "x" * 1000)
    code, text = smtp_error(edge, [box.address], message())
    assert code == 550
    assert text == "5.0.0 Target rejected the message (HTTP 404): " + "x" * 400


def test_a_4xx_answer_that_is_not_plain_text_is_refused_without_quoting_it(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/422?type=application/json&reason=%7B%22error%22%3A1%7D")
    code, text = smtp_error(edge, [box.address], message())
    assert (code, text) == (550, "5.0.0 Target rejected the message (HTTP 422)")
    assert history(db_session)[0].response_body == '{"error":1}\nsecond line is not shown\n'


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_answer_is_a_temporary_failure(
    status: int,
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    db_session: Session,
) -> None:
    box = mailbox(f"/status/{status}")
    code, text = smtp_error(edge, [box.address], message())
    assert (code, text) == (450, f"4.0.0 Target failed (HTTP {status}); try again later")
    (row,) = history(db_session)
    assert (row.status, row.http_status) == (str(status), status)
    assert row.response_body == f"status {status}\nsecond line is not shown\n"


def test_a_target_that_never_answers_costs_its_timeout_and_is_a_temporary_failure(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    edge.restart(target_timeout=0.5)
    box = mailbox("/never")
    code, text = smtp_error(edge, [box.address], message())
    assert (code, text) == (450, "4.4.1 Target did not answer within 0.5 seconds; try again later")
    (row,) = history(db_session)
    assert (row.status, row.http_status) == ("client_timeout", None)


def test_a_refused_connection_is_a_temporary_failure_recorded_as_unreachable(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox(target_url="http://127.0.0.1:9/nothing-listens")
    code, text = smtp_error(edge, [box.address], message())
    assert (code, text) == (450, "4.4.1 Target unreachable (connection refused); try again later")
    assert history(db_session)[0].status == "unreachable"


def test_a_transcript_of_one_delivery(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    smtp = Conversation(edge.mx_port)
    assert smtp.greeting == ["220 mx.cloudmailin.test ESMTP CloudMailin"]
    talk(
        smtp,
        [
            (
                "EHLO client.example",
                [
                    "250-mx.cloudmailin.test",
                    "250-SIZE 41943040",
                    "250-8BITMIME",
                    "250-PIPELINING",
                    "250-SMTPUTF8",
                    "250-STARTTLS",
                    "250 HELP",
                ],
            ),
            ("MAIL FROM:<someone@sender.example> SIZE=200", ["250 2.1.0 OK"]),
            (f"RCPT TO:<{box.address}>", ["250 2.1.5 OK"]),
            ("DATA", ["354 End data with <CR><LF>.<CR><LF>"]),
            (
                "Subject: hi\r\n\r\n..leading dot\r\n.",
                ["250 2.0.0 Message accepted by the target (HTTP 200)"],
            ),
            ("QUIT", ["221 Bye"]),
        ],
    )
    assert json.loads(target.requests[0].body)["plain"] == ".leading dot\n"


def test_the_null_sender_is_accepted_and_posted_as_an_empty_from(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/200")
    send(edge, [box.address], message(), sender="<>")
    envelope = json.loads(target.requests[0].body)["envelope"]
    assert envelope["from"] == ""
    assert envelope["spf"]["domain"] == "client.example"
    assert history(db_session)[0].envelope_from == ""


def test_multipart_addresses_get_form_data(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200", fmt="multipart")
    send(edge, [box.address], message("Form"))
    (post,) = target.requests
    assert (post.header("content-type") or "").startswith("multipart/form-data; boundary=")
    fields = post.form()
    assert fields["headers[subject]"] == b"Form"
    assert fields["envelope[to]"] == box.address.encode()
    assert fields["envelope[spf][result]"] == b"pass"


@pytest.fixture
def failing_history(db_session: Session) -> Iterator[None]:
    """A real database failure on every history insert (a trigger), as in an outage."""
    db_session.execute(
        text(
            "CREATE FUNCTION refuse_history() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'history is down'; END $$"
        )
    )
    db_session.execute(
        text(
            "CREATE TRIGGER refuse_history BEFORE INSERT ON inbound_messages "
            "FOR EACH ROW EXECUTE FUNCTION refuse_history()"
        )
    )
    db_session.commit()
    try:
        yield
    finally:
        db_session.execute(text("DROP TRIGGER refuse_history ON inbound_messages"))
        db_session.execute(text("DROP FUNCTION refuse_history()"))
        db_session.commit()


def test_mail_the_target_accepted_is_still_accepted_when_the_history_cannot_be_written(
    failing_history: None,
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    box = mailbox("/status/201")
    assert send(edge, [box.address], message()) == {}
    assert len(target.requests) == 1
    assert any("could not record delivery" in r.getMessage() for r in caplog.records)


def test_a_message_over_the_parsers_caps_is_refused_permanently_and_recorded(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/200")
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(1001))
    raw = (
        b"Subject: many parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + parts
        + b"--b--\r\n"
    )
    code, text = smtp_error(edge, [box.address], raw)
    assert (code, text) == (554, "5.6.0 Message structure too complex to process")
    assert target.requests == []
    (row,) = history(db_session)
    assert (row.status, row.smtp_reply) == ("rejected_content", "554 " + text)


def test_an_8bit_message_declared_with_body_8bitmime_arrives_decoded(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    raw = (
        f"From: <{SENDER}>\r\nTo: {box.address}\r\nSubject: Grüße\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Schöne Grüße aus Köln — ☃\r\n"
    ).encode()
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    assert smtp.command(f"MAIL FROM:<{SENDER}> BODY=8BITMIME") == ["250 2.1.0 OK"]
    assert smtp.command(f"RCPT TO:<{box.address}>") == ["250 2.1.5 OK"]
    assert smtp.command("DATA")[0].startswith("354")
    smtp.send(raw + b".\r\n")
    assert smtp.reply() == ["250 2.0.0 Message accepted by the target (HTTP 200)"]
    payload = json.loads(target.requests[0].body)
    assert payload["plain"] == "Schöne Grüße aus Köln — ☃\n"
    assert payload["headers"]["subject"] == "Grüße"
