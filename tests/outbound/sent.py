"""A message that went out: accepted through `sending.accept` (the rules both doors' batches go
through) and its recipients handed to their MX hosts, written as the delivery engine's store
writes it."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.models import OutboundEvent, OutboundMessage, OutboundRecipient, Resource, Suppression
from provider.models.base import utcnow
from provider.models.outbound import DELIVERED
from provider.outbound.outgoing import from_smtp
from provider.services.sending import SendingPolicy, accept, new_message_id

from .conftest import SENDING_DOMAIN, Account


def sent_message(
    db_session: Session, account: Account, recipients: list[str], *, domain: str = SENDING_DOMAIN
) -> uuid.UUID:
    message_id = new_message_id()
    raw = (
        f"From: Shop <orders@{domain}>\r\nTo: {', '.join(recipients)}\r\n"
        "Subject: Your order\r\n\r\nThanks.\r\n"
    ).encode()
    outgoing = from_smtp(f"orders@{domain}", recipients, raw, str(message_id))
    resource = db_session.get(Resource, account.resource_id)
    assert resource is not None
    accept(db_session, SendingPolicy(verify_sending_domains=True), resource, outgoing, message_id,
           wake=lambda session, message: None)
    now = utcnow()
    rows = select(OutboundRecipient).where(OutboundRecipient.message_id == message_id)
    for row in db_session.scalars(rows):
        if row.state == "queued":
            row.state, row.attempts, row.next_attempt_at = DELIVERED, 1, None
            row.last_reply = "250 2.0.0 Ok: queued as 4ABC"
            row.events.append(OutboundEvent(at=now, state=DELIVERED, reply=row.last_reply,
                                            mx="mx.example", webhook_pending=True))
    db_session.commit()
    return message_id


def recipient(db_session: Session, message_id: uuid.UUID, address: str) -> OutboundRecipient:
    db_session.expire_all()
    row = db_session.scalar(select(OutboundRecipient).where(
        OutboundRecipient.message_id == message_id, OutboundRecipient.address == address))
    assert row is not None
    return row


def suppressed(db_session: Session, account: Account) -> dict[str, str]:
    db_session.expire_all()
    return {row.address: row.reason for row in db_session.scalars(
        select(Suppression).where(Suppression.resource_id == account.resource_id))}


def message_count(db_session: Session) -> int:
    return len(db_session.scalars(select(OutboundMessage.id)).all())
