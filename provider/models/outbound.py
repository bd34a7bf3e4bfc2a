"""Outbound mail: the message as accepted, each recipient's delivery state, and every change.

PostgreSQL is the queue of record (DESIGN.md decision 3): a recipient is due when its state is
`queued` or `deferred` and `next_attempt_at` has passed, whatever Redis holds. RQ jobs only wake
the delivery workers up; a lost job delays a message by one sweep period, never loses it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow

# Recipient states (spec/outbound.md, "Delivery"); the first two are waiting for an attempt.
QUEUED = "queued"
DEFERRED = "deferred"
DELIVERED = "delivered"
BOUNCED = "bounced"
RETRIES_EXHAUSTED = "retries_exhausted"
SUPPRESSED = "suppressed"
TEST = "test"
RECIPIENT_STATES = (QUEUED, DEFERRED, DELIVERED, BOUNCED, RETRIES_EXHAUSTED, SUPPRESSED, TEST)
PENDING_STATES = (QUEUED, DEFERRED)
FINAL_STATES = (DELIVERED, BOUNCED, RETRIES_EXHAUSTED, SUPPRESSED, TEST)

API = "api"
SMTP = "smtp"


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"
    __table_args__ = (Index("ix_outbound_messages_resource_created", "resource_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    source: Mapped[str] = mapped_column(String(8))
    sender: Mapped[str] = mapped_column(Text)
    """The From header as given; the envelope sender is the VERP bounce address."""
    sender_domain: Mapped[str] = mapped_column(String(255))
    to: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    cc: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    subject: Mapped[str | None] = mapped_column(Text)
    message_id_header: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    priority: Mapped[str] = mapped_column(String(16))
    test_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    """The message as composed, unsigned: DKIM signs at delivery with the domain's current key."""

    recipients: Mapped[list[OutboundRecipient]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="OutboundRecipient.id"
    )


class OutboundRecipient(Base):
    __tablename__ = "outbound_recipients"
    __table_args__ = (
        UniqueConstraint("message_id", "address", name="uq_outbound_recipients_message_address"),
        # The delivery workers' claim: due recipients, by class, then oldest first.
        Index(
            "ix_outbound_recipients_due",
            "priority_rank",
            "next_attempt_at",
            postgresql_where="state IN ('queued', 'deferred')",
        ),
        Index("ix_outbound_recipients_resource_address", "resource_id", "address"),
        # The overview's outbound chart: a resource's delivered and bounced recipients by day (0017).
        Index("ix_outbound_recipients_resource_state_updated", "resource_id", "state", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("outbound_messages.id", ondelete="CASCADE"), index=True
    )
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(Text)
    domain: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(24), default=QUEUED)
    priority_rank: Mapped[int] = mapped_column(SmallInteger, default=1)
    """The message's class as its place in `limits.PRIORITIES` (0 first), so a claim needs no join."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_reply: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    message: Mapped[OutboundMessage] = relationship(back_populates="recipients")
    events: Mapped[list[OutboundEvent]] = relationship(
        back_populates="recipient", cascade="all, delete-orphan", order_by="OutboundEvent.id"
    )


class OutboundEvent(Base):
    """One change of a recipient's state, with the remote reply that caused it."""

    __tablename__ = "outbound_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("outbound_recipients.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    state: Mapped[str] = mapped_column(String(24))
    reply: Mapped[str | None] = mapped_column(Text)
    """The remote SMTP reply (or why there was none: DNS, connection, timeout)."""
    mx: Mapped[str | None] = mapped_column(String(255))
    webhook_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    """Not yet POSTed to the resource's events webhook."""

    __table_args__ = (Index("ix_outbound_events_webhook_pending", "id", postgresql_where="webhook_pending"),)

    recipient: Mapped[OutboundRecipient] = relationship(back_populates="events")


class Suppression(Base):
    """An address that hard-bounced: later messages to it are not attempted until removed."""

    __tablename__ = "suppressions"
    __table_args__ = (Index("ix_suppressions_resource_created", "resource_id", "created_at"),)

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(Text, primary_key=True)
    """Lower-cased: mailbox local parts are case-sensitive in theory, never in practice."""
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
