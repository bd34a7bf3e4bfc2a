"""What goes wrong around a delivery still gets its documented reply and a history row: odd
target answers, TLS failures, the edge's own failures, floods, and clients that leave early."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from provider.plans import PLANS
from smtp_edge.data import flood_limit
from tests.dnsserver import DnsServer

from .conftest import (
    SENDER_DOMAIN,
    EdgeThread,
    Mailbox,
    Target,
    history,
    message,
    open_transaction,
    smtp_error,
)


def test_a_refusal_in_a_charset_nobody_knows_still_bounces_with_its_reason(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/404?reason=No%20such%20user&type=text/plain;%20charset=x-bogus")
    assert smtp_error(edge, [box.address], message()) == (
        550, "5.0.0 Target rejected the message (HTTP 404): No such user"
    )
    (row,) = history(db_session)
    assert (row.status, row.response_body) == ("404", "No such user\nsecond line is not shown\n")


def test_a_redirect_without_a_location_is_a_temporary_failure(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/302")
    assert smtp_error(edge, [box.address], message()) == (
        450, "4.0.0 Target failed (HTTP 302); try again later"
    )
    assert history(db_session)[0].status == "302"


def test_a_tls_failure_at_the_target_is_unreachable(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    # https:// to a server that speaks plain HTTP: the handshake fails.
    box = mailbox(target_url=f"https://127.0.0.1:{target.port}/status/200")
    code, reply = smtp_error(edge, [box.address], message())
    assert (code, reply) == (450, "4.4.1 Target unreachable (TLS error); try again later")
    assert history(db_session)[0].status == "unreachable"


def test_a_failure_of_the_edge_itself_defers_the_message_and_is_recorded(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox()
    # A row no code path writes: the renderer has no such format, which is the edge's own bug.
    db_session.execute(text("UPDATE addresses SET format = 'bogus' WHERE id = :id"), {"id": box.address_id})
    db_session.commit()
    assert smtp_error(edge, [box.address], message()) == (451, "4.3.0 Local error; try again later")
    (row,) = history(db_session)
    assert (row.status, row.smtp_reply) == ("local_error", "451 4.3.0 Local error; try again later")
    assert target.requests == []


def test_a_client_flooding_far_past_the_limit_is_cut_off_and_recorded(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox(plan="free")
    smtp = open_transaction(edge.mx_port, box.address)
    assert smtp.command("DATA")[0].startswith("354")
    line = b"x" * 998 + b"\r\n"
    limit = PLANS["free"].max_message_bytes
    chunk = line * 1024
    sent = 0
    with pytest.raises(OSError):  # the server closes on us mid-stream
        while sent < flood_limit(limit) + len(chunk) * 4:
            smtp.sock.sendall(chunk)
            sent += len(chunk)
        smtp.reply()  # the 552, then the connection ends
        smtp.reply()
    (row,) = history(db_session)
    assert row.status == "rejected_size" and row.smtp_reply.startswith("552 5.3.4")
    assert row.size > flood_limit(limit)
    assert target.requests == []


@pytest.fixture
def slow_spf(dns_server: DnsServer) -> Iterator[None]:
    dns_server.delays[SENDER_DOMAIN.lower()] = 0.5  # within one resolver try (1 s)
    try:
        yield
    finally:
        del dns_server.delays[SENDER_DOMAIN.lower()]


def test_the_spf_verdict_survives_a_client_leaving_right_after_the_final_dot(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], slow_spf: None
) -> None:
    box = mailbox("/status/200")
    smtp = open_transaction(edge.mx_port, box.address)  # its MAIL starts the 0.5 s SPF check
    smtp.command("DATA")
    smtp.send(message("left early") + b".\r\n")
    smtp.close()
    post = target.wait_for("/status/200")
    assert json.loads(post.body)["envelope"]["spf"] == {"result": "pass", "domain": SENDER_DOMAIN}
