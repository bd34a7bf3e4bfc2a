"""The history of inbound deliveries: one row per message and target (spec/inbound.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow

# Statuses that are not an HTTP code.
CLIENT_TIMEOUT = "client_timeout"
UNREACHABLE = "unreachable"
REJECTED_SIZE = "rejected_size"
REJECTED_QUOTA = "rejected_quota"
# Refused after DATA because the message could not be processed (554 5.6.0: over the parser's caps).
REJECTED_CONTENT = "rejected_content"
# Deferred after DATA because the edge itself failed (451 4.3.0; the sender retries), not the target.
LOCAL_ERROR = "local_error"
# Deferred after DATA (450) because the address's store did not take an attachment or the message.
STORE_ERROR = "store_error"
# A re-send asked for through the API, waiting for the worker that POSTs it (services/resend.py).
RESEND_QUEUED = "resend_queued"


RECIPIENTS_TEXT = "inbound_recipients_text"
"""An SQL function (migration 0017): the row's envelope.to and every recipient as one text, one a
line, IMMUTABLE so a trigram index can hold it; what the history's `to` search matches first."""


def recipients_text(envelope_to: Any, recipients: Any) -> Any:
    return getattr(func, RECIPIENTS_TEXT)(envelope_to, recipients, type_=Text)


class InboundMessage(Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_messages_resource_received", "resource_id", "received_at"),
        # The history's substring searches (ILIKE '%...%', services/history.py), migration 0017.
        Index(
            "ix_inbound_messages_subject_trgm", "subject",
            postgresql_using="gin", postgresql_ops={"subject": "gin_trgm_ops"},
        ),
        Index(
            "ix_inbound_messages_resent_from_id", "resent_from_id",
            postgresql_where=text("resent_from_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    envelope_from: Mapped[str] = mapped_column(Text, default="")
    envelope_to: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    message_id: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    spf_result: Mapped[str | None] = mapped_column(String(16))
    tls: Mapped[bool] = mapped_column(Boolean, default=False)
    remote_ip: Mapped[str | None] = mapped_column(String(64))
    target_url: Mapped[str | None] = mapped_column(Text)
    # The HTTP code as text ("201") or one of the named statuses above.
    status: Mapped[str] = mapped_column(String(32), index=True)
    http_status: Mapped[int | None] = mapped_column(Integer)
    smtp_reply: Mapped[str] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    target_ms: Mapped[int | None] = mapped_column(Integer)
    # The SMTP edge's id for the recording (smtp_edge/spool.py): a recording written again after
    # an unknown outcome or replayed from the spool is one row and one count, not two.
    recording_id: Mapped[UUID | None] = mapped_column(PgUUID(as_uuid=True), unique=True)
    # DKIM (none/pass/fail/neutral/temperror/permerror: pass when any signature passed) and
    # DMARC (none/pass/fail/temperror/permerror) results; NULL for refusals before DATA.
    dkim_result: Mapped[str | None] = mapped_column(String(16))
    dmarc_result: Mapped[str | None] = mapped_column(String(16))
    # The message store's object key for the raw message (None: the message was not kept), and
    # the HELO name: with the columns above, what a re-send needs to render the message again.
    stored_message_key: Mapped[str | None] = mapped_column(Text)
    helo_domain: Mapped[str | None] = mapped_column(Text)
    # A re-send's row points to the row it re-sends (services/resend.py).
    resent_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL", name="fk_inbound_messages_resent_from_id")
    )


# The `to` search's index (migration 0017), over an expression of columns, so after the class.
Index(
    "ix_inbound_messages_to_trgm",
    recipients_text(InboundMessage.envelope_to, InboundMessage.recipients).label("recipients_text"),
    postgresql_using="gin", postgresql_ops={"recipients_text": "gin_trgm_ops"},
)
