"""Plan limits at the MX: message size (declared and real) and the monthly quota."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.models import Usage
from provider.plans import LARGEST_MESSAGE_BYTES, PLANS
from tests.domain_rows import inbound_count
from tests.usage_counts import count_inbound

from .conftest import (
    SENDER,
    Conversation,
    EdgeThread,
    Mailbox,
    Target,
    history,
    message,
    open_transaction,
)

FREE_LIMIT = PLANS["free"].max_message_bytes


def test_a_declared_size_over_every_plan_is_refused_at_mail(edge: EdgeThread) -> None:
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    assert smtp.command(f"MAIL FROM:<{SENDER}> SIZE={LARGEST_MESSAGE_BYTES + 1}") == [
        f"552 5.3.4 Message size exceeds the limit of {LARGEST_MESSAGE_BYTES} bytes"
    ]
    assert smtp.command(f"MAIL FROM:<{SENDER}> SIZE={LARGEST_MESSAGE_BYTES}") == ["250 2.1.0 OK"]


def test_a_declared_size_over_the_recipients_plan_is_refused_at_rcpt_and_recorded(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox(plan="free")
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    assert smtp.command(f"MAIL FROM:<{SENDER}> SIZE={FREE_LIMIT + 1}") == ["250 2.1.0 OK"]
    reply = f"552 5.3.4 Message size exceeds the limit of {FREE_LIMIT} bytes"
    assert smtp.command(f"RCPT TO:<{box.address}>") == [reply]
    (row,) = history(db_session)
    assert (row.status, row.smtp_reply, row.size, row.envelope_to) == (
        "rejected_size",
        reply,
        FREE_LIMIT + 1,
        box.address,
    )
    assert target.requests == []


def test_a_bigger_plan_accepts_what_the_free_plan_refuses(
    edge: EdgeThread, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox(plan="starter")
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    smtp.command(f"MAIL FROM:<{SENDER}> SIZE={FREE_LIMIT + 1}")
    assert smtp.command(f"RCPT TO:<{box.address}>") == ["250 2.1.5 OK"]


def test_a_message_over_the_plan_limit_without_size_is_refused_after_data_and_not_posted(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox(plan="free")
    line = b"x" * 998 + b"\r\n"
    raw = message() + line * (FREE_LIMIT // len(line) + 1)
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.ehlo("client.example")
        client.mail(SENDER)  # no SIZE=: smtplib adds it only when asked
        client.rcpt(box.address)
        code, text = client.data(raw)
        # The session is still usable: the refusal ended the transaction, not the connection.
        assert client.noop()[0] == 250
    assert (code, text.decode()) == (
        552,
        f"5.3.4 Message size exceeds the limit of {FREE_LIMIT} bytes",
    )
    assert target.requests == []
    (row,) = history(db_session)
    assert (row.status, row.size) == ("rejected_size", len(raw))


def test_a_message_exactly_at_the_limit_is_delivered(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200", plan="free", fmt="raw")
    head = message()
    line = b"y" * 998 + b"\r\n"
    body = line * ((FREE_LIMIT - len(head)) // len(line))
    raw = head + body + b"z" * (FREE_LIMIT - len(head) - len(body) - 2) + b"\r\n"
    assert len(raw) == FREE_LIMIT
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        assert client.sendmail(SENDER, [box.address], raw) == {}
    (post,) = target.requests
    assert raw in post.body


def test_when_the_monthly_quota_is_used_up_mail_is_deferred_and_recorded(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox(plan="free")
    count_inbound(db_session, box.resource_id, datetime.now(UTC), PLANS["free"].inbound_per_month)
    db_session.commit()
    smtp = open_transaction(edge.mx_port)
    reply = "452 4.2.2 Monthly message quota of this address's plan reached; retry later or upgrade"
    assert smtp.command(f"RCPT TO:<{box.address}>") == [reply]
    (row,) = history(db_session)
    assert (row.status, row.smtp_reply, row.envelope_from) == ("rejected_quota", reply, SENDER)
    assert target.requests == []


def test_tagged_recipients_of_one_over_quota_address_make_one_row(
    edge: EdgeThread, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox(plan="free")
    count_inbound(db_session, box.resource_id, datetime.now(UTC), PLANS["free"].inbound_per_month)
    db_session.commit()
    smtp = open_transaction(edge.mx_port)
    for tag in ("a", "b", "c"):
        assert smtp.command(f"RCPT TO:<{box.address.replace('@', f'+{tag}@')}>")[0].startswith("452 4.2.2")
    assert [row.status for row in history(db_session)] == ["rejected_quota"]


def test_last_months_usage_does_not_count_against_this_month(
    edge: EdgeThread, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox(plan="free")
    count_inbound(db_session, box.resource_id, datetime(2020, 1, 31, 23, 59, tzinfo=UTC), 10_000)
    db_session.commit()
    smtp = open_transaction(edge.mx_port)
    assert smtp.command(f"RCPT TO:<{box.address}>") == ["250 2.1.5 OK"]


@pytest.mark.parametrize(
    ("path", "counted"), [("/status/201", 1), ("/status/500", 0), ("/status/404", 0)]
)
def test_only_messages_the_target_accepted_count_towards_the_quota(
    path: str,
    counted: int,
    edge: EdgeThread,
    mailbox: Callable[..., Mailbox],
    db_session: Session,
) -> None:
    box = mailbox(path)
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.ehlo("client.example")
        client.mail(SENDER)
        client.rcpt(box.address)
        client.data(message())
    db_session.expire_all()
    assert inbound_count(db_session, box.resource_id, datetime.now(UTC)) == counted


def test_counting_is_an_upsert_that_adds_up(
    db_session: Session, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox()
    now = datetime.now(UTC)
    count_inbound(db_session, box.resource_id, now)
    count_inbound(db_session, box.resource_id, now, 2)
    db_session.commit()
    (usage,) = db_session.scalars(select(Usage))
    assert (usage.inbound, usage.outbound, usage.period) == (3, 0, now.date().replace(day=1))
