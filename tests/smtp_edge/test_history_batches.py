"""History rows are written in batches (smtp_edge/history_writer.py): every message still gets
its own row and its count, and one row the database refuses does not cost the others theirs."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from psycopg.errors import ForeignKeyViolation
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from provider.models import InboundMessage
from provider.services.history import Delivery
from provider.settings import Settings
from smtp_edge.context import EdgeContext, Recording
from smtp_edge.history_store import APPLICATION_NAME
from tests.domain_rows import inbound_count

from .conftest import SENDER, EdgeThread, Mailbox, message

SESSIONS = 12


def send(port: int, rcpt: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo("client.example")
        client.mail(SENDER)
        client.rcpt(rcpt)
        with contextlib.suppress(smtplib.SMTPDataError):  # the refusing target's 5xx
            client.data(message(subject))


def test_concurrent_deliveries_each_get_a_row_and_only_accepted_ones_count(
    edge: EdgeThread, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    accepting, refusing = mailbox("/status/201"), mailbox("/status/500")
    jobs = [(accepting if i % 3 else refusing, f"message {i}") for i in range(SESSIONS)]
    with ThreadPoolExecutor(SESSIONS) as pool:
        list(pool.map(lambda job: send(edge.mx_port, job[0].address, job[1]), jobs))
    db_session.expire_all()
    recorded = {
        (row.subject, row.resource_id, row.status) for row in db_session.scalars(select(InboundMessage))
    }
    assert recorded == {
        (subject, box.resource_id, "201" if box is accepting else "500") for box, subject in jobs
    }
    now = datetime.now(UTC)
    assert inbound_count(db_session, accepting.resource_id, now) == sum(
        1 for box, _ in jobs if box is accepting
    )
    assert inbound_count(db_session, refusing.resource_id, now) == 0


def test_a_row_the_database_refuses_fails_alone(
    settings: Settings, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox()

    def recording(resource_id: str, subject: str) -> Recording:
        delivery = Delivery(
            resource_id=resource_id,
            address_id=None,
            envelope_from=SENDER,
            envelope_to=box.address,
            status="201",
            smtp_reply="250 OK",
            subject=subject,
        )
        return Recording(delivery, True, f"cloudmailin: {subject}")

    async def submit_together() -> list[BaseException | None]:
        context = EdgeContext(settings)
        try:
            futures = [
                context.history.submit(recording(box.resource_id, "first")),
                context.history.submit(recording(str(uuid.uuid4()), "no such resource")),
                context.history.submit(recording(box.resource_id, "third")),
            ]
            return await asyncio.gather(*futures, return_exceptions=True)
        finally:
            await context.close()

    outcomes = asyncio.run(submit_together())
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ForeignKeyViolation)
    db_session.expire_all()
    subjects = sorted(row.subject or "" for row in db_session.scalars(select(InboundMessage)))
    assert subjects == ["first", "third"]
    assert inbound_count(db_session, box.resource_id, datetime.now(UTC)) == 2


def test_the_history_writer_reconnects_when_its_connection_is_cut(
    edge: EdgeThread, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/201")
    send(edge.mx_port, box.address, "before the cut")
    cut = db_session.execute(
        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
        {"name": APPLICATION_NAME},
    ).scalars().all()
    db_session.commit()
    assert cut == [True]  # the writer's own connection, idle after its last batch
    send(edge.mx_port, box.address, "after the cut")
    db_session.expire_all()
    subjects = sorted(row.subject or "" for row in db_session.scalars(select(InboundMessage)))
    assert subjects == ["after the cut", "before the cut"]
    assert inbound_count(db_session, box.resource_id, datetime.now(UTC)) == 2
