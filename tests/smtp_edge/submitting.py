"""Helpers for the submission tests: an account that may send, a TLS+AUTH smtplib session, and
reading back what a `250 Thanks! Queued as: <uuid>` stored."""

from __future__ import annotations

import re
import smtplib
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from provider.models import OutboundMessage
from tests.outbound.conftest import SENDING_DOMAIN, Account

from .conftest import EdgeThread

SMTP_TIMEOUT = 20.0
"""Seconds smtplib waits for each reply: the deadline for every answer in these tests."""
FROM = f"Shop <orders@{SENDING_DOMAIN}>"
QUEUED = re.compile(r"Thanks! Queued as: ([0-9a-f-]{36})")

__all__ = [
    "FROM",
    "SENDING_DOMAIN",
    "Account",
    "queued_id",
    "stored",
    "stored_count",
    "submission_client",
    "submit",
]


def insecure_context() -> ssl.SSLContext:
    """The edge's certificate is self-signed in tests."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@contextmanager
def submission_client(edge: EdgeThread, account: Account | None = None) -> Iterator[smtplib.SMTP]:
    """smtplib on the submission port after STARTTLS, logged in when `account` is given."""
    with smtplib.SMTP(
        "127.0.0.1", edge.submission_port, local_hostname="app.example", timeout=SMTP_TIMEOUT
    ) as client:
        client.starttls(context=insecure_context())
        client.ehlo()
        if account is not None:
            client.login(account.username, account.key)
        yield client


def submit(
    edge: EdgeThread,
    account: Account,
    recipients: list[str],
    raw: bytes,
    sender: str = f"orders@{SENDING_DOMAIN}",
) -> tuple[int, str]:
    """One transaction; the reply to DATA (code, text)."""
    with submission_client(edge, account) as client:
        code, text = client.mail(sender)
        assert code == 250, text
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            assert code == 250, text
        code, reply = client.data(raw)
        return code, reply.decode()


def queued_id(reply: str) -> uuid.UUID:
    match = QUEUED.search(reply)
    assert match is not None, reply
    return uuid.UUID(match.group(1))


def stored(db_session: Session, message_id: uuid.UUID) -> OutboundMessage:
    db_session.expire_all()
    message = db_session.get(OutboundMessage, message_id)
    assert message is not None, f"no stored message {message_id}"
    return message


def stored_count(db_session: Session) -> int:
    db_session.expire_all()
    return db_session.query(OutboundMessage).count()
