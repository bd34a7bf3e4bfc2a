"""A stalled Redis (SIGSTOP) holds neither replies nor their history rows: asking for app log
shipping is off the reply path and every Redis call of the edge is bounded
(smtp_edge/log_shipping.py). The Redis here is one of the test's own, so stopping it leaves the
worker's other tests theirs."""

from __future__ import annotations

import dataclasses
import os
import signal
import smtplib
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from dev.services import start_redis
from provider import log_shipping_queue
from provider.crypto import SecretBox
from provider.db import session_factory
from provider.models import InboundMessage, Resource
from provider.settings import Settings

from .conftest import SENDER, EdgeThread, Mailbox, message

DEADLINE = 60.0
SESSIONS = 6
REPLY_DEADLINE = 4.0
"""How long the senders here wait for a reply: less than one Redis call may take (redis-py's own
socket timeout is 5 s), so a reply that waited for the stalled Redis never arrives."""


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    url, process = start_redis(tmp_path / "redis")
    try:
        yield url, process
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(10)


def deliver(port: int, rcpt: str, subject: str, timeout: float = DEADLINE) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
        client.ehlo("client.example")
        client.mail(SENDER)
        client.rcpt(rcpt)
        return client.data(message(subject))


def committed_subjects(session: Session) -> set[str]:
    session.expire_all()
    subjects = {row.subject or "" for row in session.scalars(select(InboundMessage))}
    session.rollback()
    return subjects


def deliver_and_look(edge: EdgeThread, box: Mailbox, subject: str) -> tuple[int, bool]:
    """The reply's code, and whether the message's row was committed when the reply came."""
    code, _ = deliver(edge.mx_port, box.address, subject, timeout=REPLY_DEADLINE)
    with session_factory(edge.settings.database_url)() as session:
        return code, subject in committed_subjects(session)


def test_replies_and_their_rows_do_not_wait_for_a_stalled_redis(
    edge_settings: Settings,
    private_redis: tuple[str, subprocess.Popen[bytes]],
    mailbox: Callable[..., Mailbox],
    db_session: Session,
) -> None:
    redis_url, redis_process = private_redis
    box = mailbox("/status/201")
    resource = db_session.get(Resource, box.resource_id)
    assert resource is not None
    resource.log_input_url_enc = SecretBox(edge_settings.encryption_key).encrypt(
        "https://token:t.x@127.0.0.1:9/logs"
    )
    db_session.commit()
    redis = Redis.from_url(redis_url)
    edge = EdgeThread(dataclasses.replace(edge_settings, redis_url=redis_url))
    try:
        assert deliver(edge.mx_port, box.address, "before the stall")[0] == 250
        os.kill(redis_process.pid, signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(SESSIONS) as pool:
                outcomes = list(pool.map(
                    lambda i: deliver_and_look(edge, box, f"during the stall {i}"), range(SESSIONS)
                ))
            # Every reply came after its row was committed, as when Redis is well.
            assert outcomes == [(250, True)] * SESSIONS
        finally:
            os.kill(redis_process.pid, signal.SIGCONT)
        redis.delete(log_shipping_queue.PENDING_KEY)
        assert deliver(edge.mx_port, box.address, "after the stall")[0] == 250
        # Asking for shipping works again once Redis does.
        deadline = time.monotonic() + DEADLINE
        while not redis.sismember(log_shipping_queue.PENDING_KEY, box.resource_id):
            assert time.monotonic() < deadline, "shipping was never asked for after the stall"
            time.sleep(0.05)
    finally:
        edge.close()
