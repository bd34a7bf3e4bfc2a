"""Session slots: one client address cannot take them all, a burst cannot overshoot the cap, and
idle or endless sessions give their slot back (issue 7, item 5).

The edge listens on 127.0.0.1; Linux routes all of 127.0.0.0/8 to loopback, so a client bound to
127.0.0.2 reaches it as a second, distinct address."""

from __future__ import annotations

import json
import resource
import select
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.orm import Session

from smtp_edge.slots import client_key

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

OTHER_CLIENT = "127.0.0.2"
PER_CLIENT_REFUSAL = "421 4.7.0 Too many connections from your address; try again later"
BUSY_REFUSAL = "421 4.3.2 Too many connections; try again later"
IDLE_CLOSE = "421 4.4.2 Timed out waiting for the client; closing"
TOO_LONG = "421 4.4.2 Session time limit reached; reconnect to continue"
GREETING = "220 mx.cloudmailin.test ESMTP CloudMailin"


@pytest.fixture
def many_open_files() -> Iterator[None]:
    """600 client sockets and the edge's end of each live in this one process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def first_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().rstrip("\r\n")


def test_one_address_holding_600_sockets_leaves_mail_from_another_address_answered(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], many_open_files: None
) -> None:
    box = mailbox("/status/200")
    held: list[socket.socket] = []
    try:
        for _ in range(600):
            sock = socket.create_connection(("127.0.0.1", edge.mx_port), timeout=30)
            held.append(sock)
        greetings = Counter(first_line(sock) for sock in held)
        share = edge.settings.smtp_max_sessions_per_client
        assert greetings == {GREETING: share, PER_CLIENT_REFUSAL: 600 - share}
        other = Conversation(edge.mx_port, source=OTHER_CLIENT)
        assert other.greeting == [GREETING]
        assert other.command("EHLO other.example")[-1] == "250 HELP"
        assert other.command(f"MAIL FROM:<{SENDER}>") == ["250 2.1.0 OK"]
        assert other.command(f"RCPT TO:<{box.address}>") == ["250 2.1.5 OK"]
        assert other.command("DATA") == ["354 End data with <CR><LF>.<CR><LF>"]
        assert other.command(message().decode() + ".") == [
            "250 2.0.0 Message accepted by the target (HTTP 200)"
        ]
        other.close()
    finally:
        for sock in held:
            sock.close()
    (post,) = target.requests
    assert json.loads(post.body)["envelope"]["remote_ip"] == OTHER_CLIENT


def test_an_address_over_its_share_is_refused_and_gets_its_slots_back_as_sessions_end(
    edge: EdgeThread,
) -> None:
    edge.restart(smtp_max_sessions_per_client=2)
    first, second = Conversation(edge.mx_port), Conversation(edge.submission_port)
    third = Conversation(edge.mx_port)
    assert third.greeting == [PER_CLIENT_REFUSAL]
    assert third.closed_by_server()
    assert Conversation(edge.mx_port, source=OTHER_CLIENT).greeting[0].startswith("220 ")
    assert first.command("QUIT") == ["221 Bye"]
    assert first.closed_by_server()
    assert Conversation(edge.mx_port).greeting[0].startswith("220 ")
    second.close()


def test_a_burst_of_connections_gets_no_more_greetings_than_the_cap(edge: EdgeThread) -> None:
    edge.restart(smtp_max_sessions=20, smtp_max_sessions_per_client=100)
    # Hold the edge's event loop while 40 connections queue up, so it accepts them as one burst.
    held = threading.Event()
    edge.loop.call_soon_threadsafe(held.wait, 30)
    burst: list[socket.socket] = []
    try:
        for _ in range(40):
            burst.append(socket.create_connection(("127.0.0.1", edge.mx_port), timeout=30))
        held.set()
        greetings = Counter(first_line(sock) for sock in burst)
    finally:
        held.set()
        for sock in burst:
            sock.close()
    assert greetings == {GREETING: 20, BUSY_REFUSAL: 20}


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        (("192.0.2.7", 25), "192.0.2.7"),
        (("2001:db8:1:2:aaaa::1", 25, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 25, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:3::1", 25, 0, 0), "2001:db8:1:3::/64"),
        (("::ffff:192.0.2.7", 25, 0, 0), "192.0.2.7"),
        (None, None),
    ],
)
def test_clients_are_counted_by_ipv4_address_or_ipv6_slash_64(peer: object, key: str | None) -> None:
    assert client_key(peer) == key


def test_outside_a_transaction_the_shorter_idle_limit_applies(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    edge.restart(smtp_pre_mail_timeout=0.3, smtp_command_timeout=30.0)
    box = mailbox("/status/200")
    in_transaction = open_transaction(edge.mx_port)
    after_a_message = open_transaction(edge.mx_port, box.address)
    assert after_a_message.command("DATA")[0].startswith("354")
    assert after_a_message.command(message().decode() + ".")[0].startswith("250 2.0.0")
    before_mail = Conversation(edge.mx_port)
    before_mail.command("EHLO client.example")
    assert after_a_message.reply() == [IDLE_CLOSE]
    assert after_a_message.closed_by_server()
    assert before_mail.reply() == [IDLE_CLOSE]
    assert before_mail.closed_by_server()
    # Waiting as long as they did, a session inside a transaction still has SMTP_COMMAND_TIMEOUT.
    assert in_transaction.command(f"RCPT TO:<{box.address}>") == ["250 2.1.5 OK"]
    in_transaction.close()


def test_a_client_sending_noop_to_stay_connected_is_closed_at_the_session_time_limit(
    edge: EdgeThread,
) -> None:
    edge.restart(smtp_session_time_limit=1.0)
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    reply: list[str] = []
    for _ in range(600):  # NOOP every 0.05 s: never idle; at most 30 s
        if select.select([smtp.sock], [], [], 0.05)[0]:
            reply = smtp.reply()
            break
        reply = smtp.command("NOOP")
        if reply != ["250 OK"]:
            break
    assert reply == [TOO_LONG]
    assert smtp.closed_by_server()


def test_a_delivery_running_at_the_session_time_limit_finishes_before_the_session_ends(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    edge.restart(smtp_session_time_limit=1.0, target_timeout=60.0)
    box = mailbox("/never")
    delivering = open_transaction(edge.mx_port, box.address)
    delivering.command("DATA")
    delivering.send(message("at the limit") + b".\r\n")
    target.wait_for("/never")
    # A session opened later reaches its limit later: once it has, so has the delivering one.
    clock = Conversation(edge.mx_port)
    assert clock.reply() == [TOO_LONG]
    target.release.set()  # the target hangs up without answering
    assert delivering.reply()[0].startswith("450 4.4.1 ")
    assert delivering.reply() == [TOO_LONG]
    assert delivering.closed_by_server()
    assert [row.status for row in history(db_session)] == ["unreachable"]


def test_a_message_still_arriving_at_the_session_time_limit_is_cut_and_not_posted(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    edge.restart(smtp_session_time_limit=1.0)
    box = mailbox("/status/200")
    smtp = open_transaction(edge.mx_port, box.address)
    smtp.command("DATA")
    smtp.send(b"Subject: trickle\r\n\r\nthe first of many slow lines\r\n")
    assert smtp.reply() == [TOO_LONG]
    assert smtp.closed_by_server()
    assert target.requests == []
    assert history(db_session) == []
