"""A provisioned add-on: one per Heroku add-on uuid (DESIGN.md decision 2: id = uuid)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, LargeBinary, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Timestamps

if TYPE_CHECKING:
    from .address import Address
    from .credential import Credential

PROVISIONING = "provisioning"
PROVISIONED = "provisioned"
DEPROVISIONED = "deprovisioned"


class Resource(Timestamps, Base):
    __tablename__ = "resources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    app_name: Mapped[str | None] = mapped_column(String(255))
    heroku_id: Mapped[str | None] = mapped_column(String(255))
    plan: Mapped[str] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default=PROVISIONING, index=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    # log_input_url carries a logplex token in its userinfo, so it is a secret at rest.
    log_input_url_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Where delivery events are POSTed (services/events_webhook.py); may carry credentials too.
    events_webhook_url_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    oauth_grant_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    oauth_grant_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    access_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deprovisioned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    addresses: Mapped[list[Address]] = relationship(
        back_populates="resource", cascade="all, delete-orphan", order_by="Address.id"
    )
    credentials: Mapped[list[Credential]] = relationship(
        back_populates="resource", cascade="all, delete-orphan", order_by="Credential.id"
    )

    @hybrid_property
    def active(self) -> bool:
        """Whether the add-on serves at all (authenticates, routes mail, answers its dashboard):
        every state but the deprovisioned tombstone, so one still provisioning already works. The
        one definition of it, as an attribute here and as SQL in queries (`Resource.active`)."""
        return self.state != DEPROVISIONED
