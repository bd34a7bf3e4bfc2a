"""The archive's lines, written by the database, are the API's objects: same fields, same values."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from provider.models import InboundMessage, OutboundEvent, OutboundMessage, OutboundRecipient
from provider.services.archive import archive_chunks
from provider.services.history import Delivery, incoming_status
from provider.services.outbound_history import message_status
from provider.settings import Settings
from tests.domain_rows import record_delivery

from ..outbound.conftest import new_account

AWKWARD = 'ünï "quoted" \\ back\tslash\x01\x1f 🚀\nline'


def archived(db_session: Session, resource_id: str) -> list[dict[str, object]]:
    text = b"".join(archive_chunks(db_session, resource_id, partition=2)).decode()
    db_session.rollback()
    return [json.loads(line) for line in text.splitlines()]


def test_inbound_lines_are_the_api_s_incoming_statuses(db_session: Session, settings: Settings) -> None:
    resource_id = new_account(db_session, settings).resource_id
    whole_second = datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC)
    record_delivery(db_session, Delivery(
        resource_id=resource_id, address_id=None, envelope_from="", envelope_to="a@cloudmailin.test",
        status="rejected_size", smtp_reply="552 too big", received_at=whole_second,
    ))
    first = record_delivery(db_session, Delivery(
        resource_id=resource_id, address_id=None, envelope_from="ann@x.example",
        envelope_to="a@cloudmailin.test", recipients=["a@cloudmailin.test", "b@cloudmailin.test"],
        status="201", http_status=201, smtp_reply="250 ok", subject=AWKWARD, message_id="<m@x>",
        size=2**40, spf_result="pass", tls=True, dkim_result="pass", dmarc_result="none",
        remote_ip="192.0.2.1", target_url="https://app.example/in", response_body=AWKWARD,
        target_ms=7, received_at=whole_second + timedelta(microseconds=120),
    ))
    db_session.flush()
    db_session.add(InboundMessage(
        resource_id=resource_id, envelope_to="a@cloudmailin.test", recipients=[], status="resend_queued",
        smtp_reply="", resent_from_id=first.id, received_at=whole_second + timedelta(seconds=1),
    ))
    db_session.commit()
    rows = db_session.scalars(select(InboundMessage).order_by(InboundMessage.received_at)).all()

    lines = [line for line in archived(db_session, resource_id) if line["type"] == "inbound"]

    assert [{k: v for k, v in line.items() if k not in ("type", "stored_message")} for line in lines] == [
        incoming_status(row) for row in rows]
    assert lines[0]["received_at"] == "2026-11-03T04:05:06Z"
    assert lines[1]["received_at"] == "2026-11-03T04:05:06.000120Z" and lines[1]["subject"] == AWKWARD


def test_outbound_lines_are_the_api_s_messages_with_every_event(
    db_session: Session, settings: Settings
) -> None:
    resource_id = new_account(db_session, settings).resource_id
    at = datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC)
    for n in range(3):
        message = OutboundMessage(
            id=uuid.uuid4(), resource_id=resource_id, created_at=at + timedelta(minutes=n), source="api",
            sender="Shop <o@shop.example>", sender_domain="shop.example", to=["x@example.org"], cc=[],
            subject=AWKWARD if n else None, message_id_header=None, tags=["a", "b"] if n else [],
            priority="standard", test_mode=n == 2, size=10, raw=b"x",
        )
        for state, address in (("deferred", "x@example.org"), ("delivered", "y@example.org")):
            recipient = OutboundRecipient(
                resource_id=resource_id, address=address, domain="example.org", state=state,
                attempts=2, next_attempt_at=at + timedelta(hours=1, microseconds=5), last_reply=AWKWARD,
            )
            recipient.events.append(OutboundEvent(state="queued", at=at, reply=None, mx=None))
            recipient.events.append(
                OutboundEvent(state=state, at=at + timedelta(seconds=3), reply="451", mx="mx"))
            message.recipients.append(recipient)
        if n == 0:
            message.recipients[1].events.clear()
        db_session.add(message)
    db_session.commit()
    messages = db_session.scalars(
        select(OutboundMessage).order_by(OutboundMessage.created_at)
        .options(selectinload(OutboundMessage.recipients).selectinload(OutboundRecipient.events))
    ).all()

    lines = [line for line in archived(db_session, resource_id) if line["type"] == "outbound"]

    assert [{k: v for k, v in line.items() if k != "type"} for line in lines] == [
        message_status(message) for message in messages]
    deferred, delivered = lines[1]["recipients"]  # type: ignore[misc]
    assert deferred["next_attempt_at"] == "2026-11-03T05:05:06.000005Z"
    assert delivered["next_attempt_at"] is None
    assert lines[0]["recipients"][1]["events"] == []  # type: ignore[index]
