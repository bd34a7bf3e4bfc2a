"""Bounces coming back to the VERP address of outbound mail, through the real MX listener.

The reports are written as Postfix's bounce(8) writes them, and taken from real servers' bounces
in the corpus (flanker's fixtures: Postfix, Exchange Online, AOL, Sendmail); each is sent with a
null sender (`MAIL FROM:<>`), as a bouncing server does.
"""

from __future__ import annotations

import smtplib
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.models import OutboundEvent
from provider.models.outbound import BOUNCED, DEFERRED, DELIVERED, QUEUED, RETRIES_EXHAUSTED
from provider.settings import Settings
from tests.inbound.samples import CORPUS, corpus_part
from tests.outbound.conftest import Account, new_account
from tests.outbound.sent import recipient, sent_message, suppressed
from workers.delivery.engine import bounce_address

from .conftest import EdgeThread, open_transaction

BOUNCES = CORPUS / "flanker" / "bounce"


def postfix_report(
    message_id: uuid.UUID,
    bounce_domain: str,
    recipient: str,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual "
    "mailbox table",
) -> bytes:
    """A DSN as Postfix's bounce(8) writes it (delay notices say `delayed` and 4.x.x)."""
    boundary = "9A3C21E0F1.1764581234/mx.remote.example"
    diagnostic = diagnostic.format(rcpt=recipient)
    return f"""Return-Path: <>
Received: by mx.remote.example (Postfix)
\tid 9A3C21E0F1; Tue,  1 Dec 2026 09:40:34 +0000 (UTC)
Date: Tue,  1 Dec 2026 09:40:34 +0000 (UTC)
From: MAILER-DAEMON@mx.remote.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {bounce_address(message_id, bounce_domain)}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"
Content-Transfer-Encoding: 8bit
Message-Id: <20261201094034.9A3C21E0F1@mx.remote.example>

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.remote.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<{recipient}>: {diagnostic.partition("; ")[2]}

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example
X-Postfix-Queue-ID: 9A3C21E0F1
X-Postfix-Sender: rfc822; {bounce_address(message_id, bounce_domain)}
Arrival-Date: Tue,  1 Dec 2026 09:40:33 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mailstore.remote.example
Diagnostic-Code: {diagnostic}

--{boundary}
Content-Description: Undelivered Message
Content-Type: message/rfc822

Return-Path: <{bounce_address(message_id, bounce_domain)}>
From: Shop <orders@shop.example>
To: {recipient}
Subject: Your order

Thanks.

--{boundary}--
""".replace("\n", "\r\n").encode()


def bounce(edge: EdgeThread, settings: Settings, message_id: uuid.UUID, report: bytes) -> tuple[int, bytes]:
    """Send `report` as a bouncing server does; the reply to DATA."""
    with smtplib.SMTP("127.0.0.1", edge.mx_port, local_hostname="mx.remote.example") as client:
        client.ehlo()
        code, _ = client.mail("")
        assert code == 250
        code, text = client.rcpt(bounce_address(message_id, settings.bounce_domain))
        assert code == 250, text
        return client.data(report)


def events(db_session: Session, message_id: uuid.UUID, address: str) -> list[OutboundEvent]:
    row = recipient(db_session, message_id, address)
    return list(db_session.scalars(
        select(OutboundEvent).where(OutboundEvent.recipient_id == row.id).order_by(OutboundEvent.id)))


@pytest.fixture
def account(db_session: Session, settings: Settings) -> Account:
    return new_account(db_session, settings)


def test_a_hard_bounce_marks_the_recipient_bounced_and_suppresses_the_address(
    edge: EdgeThread, settings: Settings, db_session: Session, account: Account
) -> None:
    message_id = sent_message(db_session, account, ["gone@remote.example", "here@remote.example"])

    code, text = bounce(edge, settings, message_id, postfix_report(
        message_id, settings.bounce_domain, "gone@remote.example"))

    assert (code, text) == (250, b"2.0.0 Delivery report received")
    gone = recipient(db_session, message_id, "gone@remote.example")
    assert gone.state == BOUNCED
    assert gone.last_reply == (
        "550 5.1.1 <gone@remote.example>: Recipient address rejected: User unknown in virtual mailbox table")
    last = events(db_session, message_id, "gone@remote.example")[-1]
    assert (last.state, last.reply, last.mx, last.webhook_pending) == (
        BOUNCED, gone.last_reply, "mailstore.remote.example", True)
    assert suppressed(db_session, account) == {"gone@remote.example": gone.last_reply}
    assert recipient(db_session, message_id, "here@remote.example").state == DELIVERED


def test_a_delay_notice_adds_a_soft_bounce_event_and_keeps_the_state(
    edge: EdgeThread, settings: Settings, db_session: Session, account: Account
) -> None:
    message_id = sent_message(db_session, account, ["slow@remote.example"])

    code, _ = bounce(edge, settings, message_id, postfix_report(
        message_id, settings.bounce_domain, "slow@remote.example", action="delayed", status="4.4.1",
        diagnostic="X-Postfix; connect to mailstore.remote.example[192.0.2.8]:25: Connection timed out"))

    assert code == 250
    row = recipient(db_session, message_id, "slow@remote.example")
    assert row.state == DELIVERED
    last = events(db_session, message_id, "slow@remote.example")[-1]
    assert (last.state, last.webhook_pending) == (DEFERRED, True)
    assert last.reply == "4.4.1 connect to mailstore.remote.example[192.0.2.8]:25: Connection timed out"
    assert suppressed(db_session, account) == {}


def test_a_bounce_sent_twice_is_recorded_once(
    edge: EdgeThread, settings: Settings, db_session: Session, account: Account
) -> None:
    message_id = sent_message(db_session, account, ["gone@remote.example"])
    report = postfix_report(message_id, settings.bounce_domain, "gone@remote.example")

    assert bounce(edge, settings, message_id, report)[0] == 250
    assert bounce(edge, settings, message_id, report)[0] == 250

    kinds = [e.state for e in events(db_session, message_id, "gone@remote.example")]
    assert kinds == [QUEUED, DELIVERED, BOUNCED]


def test_a_report_on_a_message_we_do_not_hold_is_accepted_and_dropped(
    edge: EdgeThread, settings: Settings, db_session: Session, account: Account
) -> None:
    unknown = uuid.uuid4()
    report = postfix_report(unknown, settings.bounce_domain, "x@remote.example")
    code, _ = bounce(edge, settings, unknown, report)
    assert code == 250
    assert suppressed(db_session, account) == {}


def test_mail_without_a_delivery_report_is_accepted_and_changes_nothing(
    edge: EdgeThread, settings: Settings, db_session: Session, account: Account
) -> None:
    message_id = sent_message(db_session, account, ["someone@remote.example"])
    reply = (b"From: someone@remote.example\r\nSubject: Out of office\r\n\r\nI am away until Monday.\r\n")

    assert bounce(edge, settings, message_id, reply)[0] == 250

    assert [e.state for e in events(db_session, message_id, "someone@remote.example")] == [QUEUED, DELIVERED]


def test_other_addresses_at_the_bounce_domain_are_refused(edge: EdgeThread, settings: Settings) -> None:
    domain = settings.bounce_domain
    smtp = open_transaction(edge.mx_port)
    try:
        for local in ("someone", "bounces", "bounces+not-a-uuid", f"bounces+{uuid.uuid4().hex}"):
            assert smtp.command(f"RCPT TO:<{local}@{domain}>") == ["550 5.1.1 No such recipient here"]
        assert smtp.command(f"RCPT TO:<postmaster@{domain}>") == ["250 2.1.5 OK"]
    finally:
        smtp.close()


def test_a_bounce_address_in_upper_case_is_still_ours(
    edge: EdgeThread, settings: Settings, db_session: Session, account: Account
) -> None:
    message_id = sent_message(db_session, account, ["gone@remote.example"])
    address = bounce_address(message_id, settings.bounce_domain).upper()
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        report = postfix_report(message_id, settings.bounce_domain, "gone@remote.example")
        client.sendmail("", [address], report)
    assert recipient(db_session, message_id, "gone@remote.example").state == BOUNCED


@pytest.mark.parametrize(
    ("name", "address", "state", "hard"),
    [
        ("zed.eml", "asdfasdfasdfasdfasdfasdfewrqertrtyrthsfgdfgadfqeadvxzvz@gmail.com", BOUNCED, True),
        ("office365.eml", "noname@example.com", BOUNCED, True),
        ("mailbox-full.eml", "user@aol.com", BOUNCED, False),
        ("delayed.eml", "foo@example.com", RETRIES_EXHAUSTED, False),
        ("no-mx.eml", "user@example.com", DELIVERED, False),
        ("gmail-invalid-address.eml", "awfawfawfawfawfaw@someserverhere.com", DELIVERED, False),
    ],
)
def test_real_servers_bounces_are_read(
    edge: EdgeThread, settings: Settings, db_session: Session, account: Account,
    name: str, address: str, state: str, hard: bool,
) -> None:
    path = corpus_part(BOUNCES / name)
    message_id = sent_message(db_session, account, [address])

    assert bounce(edge, settings, message_id, path.read_bytes())[0] == 250

    assert recipient(db_session, message_id, address).state == state
    assert (address in suppressed(db_session, account)) is hard
    kinds = [e.state for e in events(db_session, message_id, address)]
    if name == "no-mx.eml":
        assert kinds == [QUEUED, DELIVERED, DEFERRED]
    elif name == "gmail-invalid-address.eml":  # plain text, no report: nothing to rely on
        assert kinds == [QUEUED, DELIVERED]
    else:
        assert kinds == [QUEUED, DELIVERED, state]


def test_a_bounce_the_database_cannot_take_is_deferred_not_lost(
    edge: EdgeThread, settings: Settings, db_session: Session, account: Account
) -> None:
    message_id = sent_message(db_session, account, ["gone@remote.example"])
    report = postfix_report(message_id, settings.bounce_domain, "gone@remote.example")
    edge.restart(database_url="postgresql://nobody@127.0.0.1:9/nothing-listens")

    code, text = bounce(edge, settings, message_id, report)

    assert (code, text) == (
        451, b"4.3.0 CloudMailin cannot reach its database right now; try again in a few seconds"
    )
    assert recipient(db_session, message_id, "gone@remote.example").state == DELIVERED
    edge.restart(database_url=settings.database_url)
    assert bounce(edge, settings, message_id, report)[0] == 250  # the bouncing server's retry
    assert recipient(db_session, message_id, "gone@remote.example").state == BOUNCED
