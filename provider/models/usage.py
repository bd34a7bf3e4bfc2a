"""Monthly usage counters, so quota checks are one indexed row read instead of a count(*)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class Usage(Base):
    __tablename__ = "usage"

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[date] = mapped_column(Date, primary_key=True)
    inbound: Mapped[int] = mapped_column(BigInteger, default=0)
    outbound: Mapped[int] = mapped_column(BigInteger, default=0)
