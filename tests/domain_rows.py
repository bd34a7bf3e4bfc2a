"""Rows the tests put in place directly, as production code never does one at a time: the web
provisions with one INSERT (`services.new_resource`), the edge writes history with COPY in batches
(`smtp_edge.history_store`) and reads quotas from its route cache. These write and read through the
same column builders the production paths use, so the rows are the ones those paths would make."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.models import Address, InboundMessage, Resource, Usage
from provider.models.address import DEFAULT_FORMAT
from provider.services.addresses import new_address_values
from provider.services.history import Delivery, delivery_row
from provider.services.usage import month_start
from provider.settings import Settings


def create_address(
    session: Session, settings: Settings, resource: Resource, target_url: str | None,
    fmt: str = DEFAULT_FORMAT,
) -> Address:
    """Add the resource's forward address; `target_url` and `fmt` must already be valid."""
    address = Address(**new_address_values(settings, target_url, fmt))
    resource.addresses.append(address)
    session.add(address)
    return address


def record_delivery(session: Session, delivery: Delivery) -> InboundMessage:
    """Add one history row; the caller commits."""
    row = InboundMessage(**delivery_row(delivery))
    session.add(row)
    return row


def inbound_count(session: Session, resource_id: str, when: datetime) -> int:
    used = session.scalar(
        select(Usage.inbound).where(Usage.resource_id == resource_id, Usage.period == month_start(when))
    )
    return int(used or 0)
