"""PostgreSQL goes away under SMTP submission: a message that cannot be committed is answered with a
temporary 451 4.3.0 (the client keeps it and retries), never with a 250 that could not be kept, and
the retry once PostgreSQL is back is stored exactly once.

The outage is real: this module's own PostgreSQL stopped with `pg_ctl stop -m immediate` while the
edge holds pooled connections to it, then started again in place.
"""

from __future__ import annotations

import dataclasses
import smtplib
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from provider.db import session_factory
from provider.models import OutboundMessage
from provider.settings import Settings
from smtp_edge.context import DB_THREADS
from tests.outbound.conftest import new_account
from tests.private_postgres import PrivatePostgres

from .conftest import EdgeThread
from .submitting import FROM, SENDING_DOMAIN, Account, queued_id, submission_client

DEADLINE = 60.0
RAW = f"From: {FROM}\r\nTo: ann@example.com\r\nSubject: Outage\r\n\r\nKept or refused.\r\n".encode()


@pytest.fixture
def private_session(outage_db: tuple[PrivatePostgres, Settings]) -> Iterator[Session]:
    factory = session_factory(outage_db[1].database_url)
    factory.kw["bind"].dispose()  # connections from before an earlier test's restart are dead
    session = factory()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def outage_edge(
    edge_settings: Settings, outage_db: tuple[PrivatePostgres, Settings]
) -> Iterator[EdgeThread]:
    running = EdgeThread(dataclasses.replace(edge_settings, database_url=outage_db[1].database_url))
    try:
        yield running
    finally:
        running.close()
        session_factory(outage_db[1].database_url, pool_size=DB_THREADS).kw["bind"].dispose()


def stored_subjects(database_url: str, account: Account) -> list[str | None]:
    factory = session_factory(database_url)
    factory.kw["bind"].dispose()  # this process's pooled connections went with the old server
    with factory() as session:
        rows = session.query(OutboundMessage).filter_by(resource_id=account.resource_id)
        return [row.subject for row in rows]


def test_postgresql_down_at_data_is_a_451_and_the_retry_once_it_is_back_is_stored_once(
    outage_edge: EdgeThread,
    pg: PrivatePostgres,
    private_session: Session,
    outage_db: tuple[PrivatePostgres, Settings],
) -> None:
    account = new_account(private_session, outage_db[1])
    private_session.close()
    with submission_client(outage_edge, account) as client:
        assert client.mail(f"orders@{SENDING_DOMAIN}")[0] == 250
        assert client.rcpt("ann@example.com")[0] == 250
        pg.stop_immediately()  # the edge's pooled connection dies under it
        code, reply = client.data(RAW)
        assert (code, reply[:5]) == (451, b"4.3.0")
        # The session stays usable and the next attempt, with no server at all, is refused alike.
        assert client.mail(f"orders@{SENDING_DOMAIN}")[0] == 250
        assert client.rcpt("ann@example.com")[0] == 250
        code, reply = client.data(RAW)
        assert (code, reply[:5]) == (451, b"4.3.0")
    pg.start()
    deadline = time.monotonic() + DEADLINE
    while True:  # what a sending client does with a 451: try again later
        with submission_client(outage_edge, account) as client:
            client.mail(f"orders@{SENDING_DOMAIN}")
            client.rcpt("ann@example.com")
            code, reply = client.data(RAW)
        if code == 250 or time.monotonic() > deadline:
            break
        assert code == 451, reply
        time.sleep(0.2)
    assert code == 250, reply
    queued_id(reply.decode())
    assert stored_subjects(outage_db[1].database_url, account) == ["Outage"]


def test_auth_while_postgresql_is_down_is_a_temporary_failure(
    outage_edge: EdgeThread,
    pg: PrivatePostgres,
    private_session: Session,
    outage_db: tuple[PrivatePostgres, Settings],
) -> None:
    account = new_account(private_session, outage_db[1], domain=None)
    private_session.close()
    pg.stop_immediately()
    with submission_client(outage_edge) as client, pytest.raises(smtplib.SMTPAuthenticationError) as failed:
        client.login(account.username, account.key)
    assert failed.value.smtp_code == 454
