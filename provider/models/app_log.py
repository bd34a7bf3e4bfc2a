"""Lines waiting to be shipped to the app's Heroku log stream (log_input), batched by a worker job.

Kept in PostgreSQL rather than only in Redis so a lost job loses no line (DESIGN.md decision 3).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class AppLogLine(Base):
    __tablename__ = "app_log_lines"
    __table_args__ = (Index("ix_app_log_lines_pending", "resource_id", "shipped_at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    message: Mapped[str] = mapped_column(Text)
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
