"""A forward address (`<20 hex>@INBOUND_DOMAIN`) with its target and delivery format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Timestamps

if TYPE_CHECKING:
    from .resource import Resource

FORMATS = ("json", "multipart", "raw", "raw_json")
DEFAULT_FORMAT = "json"


class Address(Timestamps, Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    local_id: Mapped[str] = mapped_column(String(20), unique=True)
    target_url: Mapped[str | None] = mapped_column(String(2048))
    format: Mapped[str] = mapped_column(String(16), default=DEFAULT_FORMAT)
    signing_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    size_as_string: Mapped[bool] = mapped_column(Boolean, default=False)

    resource: Mapped[Resource] = relationship(back_populates="addresses")
