"""Setting a resource's monthly inbound count in tests, through the statement the SMTP edge's
history writer runs (services.usage.count_inbound_sql)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from provider.services.usage import count_inbound_params, count_inbound_sql


def count_inbound(session: Session, resource_id: str, when: datetime, messages: int = 1) -> None:
    """Add `messages` to the month's inbound counter; the caller commits."""
    params = count_inbound_params(resource_id, when, messages)
    session.connection().exec_driver_sql(count_inbound_sql(), params)
