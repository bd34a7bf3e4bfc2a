"""SMTP/API credentials: the username and (hashed) key in CLOUDMAILIN_SMTP_URL.

A rotated-out key keeps working until `expires_at` (a grace period); the live key has none.
`key_enc` is the key itself, encrypted, so the same config can be answered again; retired and
revoked credentials have none (services/credentials.py says why the key is stored, not derived).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Timestamps

if TYPE_CHECKING:
    from .resource import Resource


class Credential(Timestamps, Base):
    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    username: Mapped[str] = mapped_column(String(64), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    resource: Mapped[Resource] = relationship(back_populates="credentials")
