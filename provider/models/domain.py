"""Custom inbound domains and sending domains (paid plans; routed only once verified)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamps

INBOUND = "inbound"
SENDING = "sending"


class Domain(Timestamps, Base):
    __tablename__ = "domains"
    __table_args__ = (UniqueConstraint("name", "kind", name="uq_domains_name_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    local_part_regex: Mapped[str | None] = mapped_column(String(255))
    verification_token: Mapped[str | None] = mapped_column(String(64))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dkim_selector: Mapped[str | None] = mapped_column(String(63))
    dkim_private_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
