"""The suppression list: addresses a resource's mail is no longer sent to after a hard bounce.

Entries are written where hard bounces are seen (`workers.delivery.store` for a refusal during
our own attempt, `services.bounces` for a report that comes back later) and read by
`sending.accept`, which marks later recipients `suppressed`. This module is how people see and
shorten the list; the API and the dashboard both call it. Addresses are kept lower-cased, so
removal matches whatever case the caller writes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..models import Suppression
from .paging import Page, QueryParams, cursor_param, iso_time, keyset_page, page_limit

__all__ = ["entry", "read_suppressions", "remove"]


def _address_key(text: str) -> str:
    if not text or text != text.strip().lower():
        raise ValueError("not a stored address")
    return text


def entry(row: Suppression) -> dict[str, Any]:
    return {"address": row.address, "reason": row.reason, "created_at": iso_time(row.created_at)}


def read_suppressions(session: Session, resource_id: str, params: QueryParams) -> Page:
    """A page of the list, newest first, paged as every list of the API is (`limit`, `cursor`);
    `paging.InvalidQuery` for bad input."""
    limit = page_limit(params)
    after = cursor_param(params, _address_key)
    query = select(Suppression).where(Suppression.resource_id == resource_id)
    rows, following = keyset_page(
        session, query, Suppression.created_at, Suppression.address, limit=limit, after=after
    )
    return Page([entry(row) for row in rows], following.encode() if following else None)


def remove(session: Session, resource_id: str, address: str) -> bool:
    """Take `address` off the list (mail to it is attempted again); False if it was not on it.
    The caller commits."""
    result = session.execute(
        delete(Suppression).where(
            Suppression.resource_id == resource_id, Suppression.address == address.strip().lower()
        )
    )
    return bool(getattr(result, "rowcount", 0))
