"""A forward address (`<20 hex>@INBOUND_DOMAIN`) with its target and delivery format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String, false
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
    # The address's S3-compatible store (services/stores.py), one for attachments and messages:
    # no bucket, no store. The credentials are secrets like any other `_enc` column.
    store_bucket: Mapped[str | None] = mapped_column(String(63))
    store_prefix: Mapped[str | None] = mapped_column(String(512))
    store_region: Mapped[str | None] = mapped_column(String(64))
    store_endpoint_url: Mapped[str | None] = mapped_column(String(2048))
    store_access_key_id_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    store_secret_access_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    store_attachments: Mapped[bool] = mapped_column(Boolean, server_default=false())
    store_messages: Mapped[bool] = mapped_column(Boolean, server_default=false())

    resource: Mapped[Resource] = relationship(back_populates="addresses")
