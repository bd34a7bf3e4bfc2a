"""History rows written in bulk (the SMTP edge's COPY over its own connection) equal the ORM's,
column for column, and a batch the database refuses leaves nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from psycopg.errors import ForeignKeyViolation
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.models import InboundMessage, Resource
from provider.models.resource import PROVISIONED
from provider.services.history import Delivery
from provider.settings import Settings
from smtp_edge.history_store import HistoryStore, Recording
from tests.domain_rows import inbound_count, record_delivery

COMPARED = [
    column.name for column in InboundMessage.__table__.columns if column.name not in ("id",)
]


def _resource(db_session: Session) -> str:
    resource = Resource(id=str(uuid.uuid4()), plan="starter", state=PROVISIONED)
    db_session.add(resource)
    db_session.commit()
    return resource.id


def _deliveries(resource_id: str) -> list[Delivery]:
    when = datetime(2026, 11, 29, 12, 0, 1, 123456, tzinfo=UTC)
    return [
        Delivery(
            resource_id=resource_id, address_id=None, envelope_from="a\x00b@sender.example",
            envelope_to="box+tag@cloudmailin.test", status="422", http_status=422,
            smtp_reply="550 5.0.0 Target rejected the message (HTTP 422): no", recipients=[
                "box+tag@cloudmailin.test", 'quoted,"\\odd"@cloudmailin.test', "{brace}@x",
            ], message_id="<m@x>", subject="Grüße \\ \t tab\nnewline", size=5120,
            spf_result="softfail", tls=True, remote_ip="2001:db8::1",
            target_url="https://user:secret@app.example/mail", response_body="x" * 5000,
            target_ms=84, received_at=when,
        ),
        Delivery(resource_id=resource_id, address_id=None, envelope_from="", envelope_to="y@z",
                 status="client_timeout", smtp_reply="450 4.4.1 timeout", received_at=when),
    ]


def _store(
    settings: Settings, deliveries: Sequence[Delivery], *, again: bool = False, counted: bool = False
) -> list[Recording]:
    """Write the rows in one batch; the recordings the store says it inserted."""

    async def write() -> list[Recording]:
        store = HistoryStore(settings)
        try:
            recordings = [Recording(delivery, counted, None) for delivery in deliveries]
            return list(await store.write(recordings, again))
        finally:
            await store.close()

    return asyncio.run(write())


def _rows(db_session: Session) -> list[dict[str, object]]:
    db_session.expire_all()
    found = db_session.scalars(select(InboundMessage).order_by(InboundMessage.id))
    return [{name: getattr(row, name) for name in COMPARED} for row in found]


def test_copied_rows_equal_the_orms(db_session: Session, settings: Settings) -> None:
    resource_id = _resource(db_session)
    deliveries = _deliveries(resource_id)
    for delivery in deliveries:
        record_delivery(db_session, delivery)
    db_session.commit()
    by_orm = _rows(db_session)
    db_session.query(InboundMessage).delete()
    db_session.commit()
    _store(settings, deliveries)
    assert _rows(db_session) == by_orm
    db_session.query(InboundMessage).delete()
    db_session.commit()
    _store(settings, deliveries, again=True)  # the idempotent path writes the same rows
    assert _rows(db_session) == by_orm
    first = by_orm[0]
    assert first["envelope_from"] == "a\ufffdb@sender.example"
    assert first["target_url"] == "https://user:•••@app.example/mail"
    assert len(str(first["response_body"])) == 2048


def test_a_refused_row_raises_the_integrity_error_and_leaves_nothing(
    db_session: Session, settings: Settings
) -> None:
    resource_id = _resource(db_session)
    batch = [*_deliveries(resource_id), *_deliveries(str(uuid.uuid4()))]
    with pytest.raises(ForeignKeyViolation):
        _store(settings, batch)
    assert _rows(db_session) == []


def test_a_batch_written_again_adds_only_the_rows_and_counts_not_there_yet(
    db_session: Session, settings: Settings
) -> None:
    resource_id = _resource(db_session)
    first, second = _deliveries(resource_id)
    assert len(_store(settings, [first], counted=True)) == 1
    inserted = _store(settings, [first, second], again=True, counted=True)
    assert [r.delivery.recording_id for r in inserted] == [second.recording_id]
    assert len(_rows(db_session)) == 2
    assert inbound_count(db_session, resource_id, first.received_at) == 2
    assert _store(settings, [first, second], again=True, counted=True) == []
    assert len(_rows(db_session)) == 2
    assert inbound_count(db_session, resource_id, first.received_at) == 2
