"""The submission listener: STARTTLS, then AUTH with the SMTP URL's user and key (sending itself:
test_submission_sending.py and test_submission_clients.py)."""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from provider.models import Resource
from provider.models.resource import DEPROVISIONED
from provider.services.credentials import IssuedCredential, issue_credential
from provider.settings import Settings

from .conftest import SENDER, Conversation, EdgeThread, Mailbox, message, talk


@pytest.fixture
def credential(
    db_session: Session, settings: Settings, mailbox: Callable[..., Mailbox]
) -> IssuedCredential:
    resource = db_session.get(Resource, mailbox().resource_id)
    assert resource is not None
    issued = issue_credential(db_session, settings, resource)
    db_session.commit()
    return issued


def submission_ehlo(*, tls: bool) -> list[str]:
    middle = ["250-AUTH LOGIN PLAIN"] if tls else ["250-STARTTLS"]
    return [
        "250-mx.cloudmailin.test",
        "250-SIZE 10485760",
        "250-8BITMIME",
        "250-PIPELINING",
        "250-SMTPUTF8",
        *middle,
        "250 HELP",
    ]


def plain(username: str, key: str) -> str:
    return base64.b64encode(f"\0{username}\0{key}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tls_session(edge: EdgeThread) -> Conversation:
    smtp = Conversation(edge.submission_port)
    smtp.command("EHLO app.example")
    smtp.starttls()
    return smtp


def test_before_starttls_there_is_no_auth_and_nothing_but_starttls_works(edge: EdgeThread) -> None:
    smtp = Conversation(edge.submission_port)
    talk(
        smtp,
        [
            ("EHLO app.example", submission_ehlo(tls=False)),
            ("AUTH PLAIN " + plain("user", "key"), ["530 Must issue a STARTTLS command first"]),
            (f"MAIL FROM:<{SENDER}>", ["530 Must issue a STARTTLS command first"]),
        ],
    )


def test_the_smtp_url_credentials_authenticate_with_plain_and_open_a_transaction(
    edge: EdgeThread, credential: IssuedCredential
) -> None:
    smtp = tls_session(edge)
    talk(
        smtp,
        [
            ("EHLO app.example", submission_ehlo(tls=True)),
            (f"MAIL FROM:<{SENDER}>", ["530 5.7.0 Authentication required"]),
            (
                "AUTH PLAIN " + plain(credential.username, credential.key),
                ["235 2.7.0 Authentication successful"],
            ),
            (f"MAIL FROM:<{SENDER}>", ["250 2.1.0 OK"]),
            ("RCPT TO:<someone@example.com>", ["250 2.1.5 OK"]),
            ("DATA", ["354 End data with <CR><LF>.<CR><LF>"]),
        ],
    )


def test_auth_login_works_too(edge: EdgeThread, credential: IssuedCredential) -> None:
    smtp = tls_session(edge)
    talk(
        smtp,
        [
            ("EHLO app.example", submission_ehlo(tls=True)),
            ("AUTH LOGIN " + b64(credential.username), ["334 UGFzc3dvcmQA"]),
            (b64(credential.key), ["235 2.7.0 Authentication successful"]),
        ],
    )


def test_smtplib_logs_in_with_the_smtp_url(edge: EdgeThread, credential: IssuedCredential) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", edge.submission_port) as client:
        client.starttls(context=context)
        assert client.login(credential.username, credential.key) == (
            235,
            b"2.7.0 Authentication successful",
        )
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(SENDER, ["someone@example.com"], message())
        assert refused.value.smtp_code == 550  # sender.example is no sending domain of this account


def test_a_wrong_key_or_unknown_user_is_refused(
    edge: EdgeThread, credential: IssuedCredential
) -> None:
    smtp = tls_session(edge)
    smtp.command("EHLO app.example")
    invalid = ["535 5.7.8 Authentication credentials invalid"]
    assert smtp.command("AUTH PLAIN " + plain(credential.username, "0" * 32)) == invalid
    assert smtp.command("AUTH PLAIN " + plain("nobody", credential.key)) == invalid
    assert smtp.command("AUTH PLAIN " + b64("\0\xff\0\xfe")) == invalid


def test_malformed_auth_gets_a_syntax_error_not_a_crash(edge: EdgeThread) -> None:
    smtp = tls_session(edge)
    smtp.command("EHLO app.example")
    assert smtp.command("AUTH PLAIN not-base64!") == ["501 5.5.2 Can't decode base64"]
    assert smtp.command("AUTH PLAIN " + b64("no separators")) == [
        "501 5.5.2 Can't split auth value"
    ]
    assert smtp.command("AUTH CRAM-MD5") == ["504 5.5.4 Unrecognized authentication type"]


def test_a_deprovisioned_resource_cannot_authenticate(
    edge: EdgeThread, credential: IssuedCredential, db_session: Session
) -> None:
    for resource in db_session.query(Resource):
        resource.state = DEPROVISIONED
    db_session.commit()
    smtp = tls_session(edge)
    smtp.command("EHLO app.example")
    assert smtp.command("AUTH PLAIN " + plain(credential.username, credential.key)) == [
        "535 5.7.8 Authentication credentials invalid"
    ]


def test_repeated_failures_from_one_address_are_throttled_even_for_a_right_key(
    edge: EdgeThread, credential: IssuedCredential
) -> None:
    smtp = tls_session(edge)
    smtp.command("EHLO app.example")
    for _ in range(5):
        assert smtp.command("AUTH PLAIN " + plain(credential.username, "wrong"))[0].startswith(
            "535 "
        )
    throttled = ["454 4.7.0 Too many failed authentication attempts; try again later"]
    assert smtp.command("AUTH PLAIN " + plain(credential.username, credential.key)) == throttled
    other = tls_session(edge)  # a new connection from the same address is throttled as well
    other.command("EHLO app.example")
    assert other.command("AUTH LOGIN") == throttled
