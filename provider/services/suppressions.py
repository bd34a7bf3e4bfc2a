"""The suppression list: addresses a resource's mail is no longer sent to after a hard bounce.

Entries are written where hard bounces are seen (`workers.delivery.store` for a refusal during
our own attempt, `services.bounces` for a report that comes back later) and read by
`sending.accept`, which marks later recipients `suppressed`. This module is how people see and
shorten the list; the API and the dashboard both call it. Addresses are kept lower-cased, so
removal matches whatever case the caller writes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from ..models import Suppression
from .history import InvalidCursor

__all__ = ["InvalidCursor", "Position", "remove", "suppression_page"]


@dataclass(frozen=True)
class Position:
    """Keyset position: the last entry of a page (newest first; then by address)."""

    created_at: datetime
    address: str

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.address}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Position:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
            stamp, bar, address = raw.partition("|")
            created_at = datetime.fromisoformat(stamp)
            if not bar or created_at.tzinfo is None:
                raise ValueError("not a position")
            return cls(created_at, address)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidCursor("cursor is not one this API returned") from None


def suppression_page(
    session: Session, resource_id: str, *, limit: int, after: Position | None = None
) -> tuple[list[Suppression], Position | None]:
    """Up to `limit` entries, newest first, and the position of the next page (None: last page)."""
    query = select(Suppression).where(Suppression.resource_id == resource_id)
    if after is not None:
        query = query.where(or_(
            Suppression.created_at < after.created_at,
            and_(Suppression.created_at == after.created_at, Suppression.address > after.address),
        ))
    rows = list(session.scalars(
        query.order_by(Suppression.created_at.desc(), Suppression.address).limit(limit + 1)
    ))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], Position(last.created_at, last.address)


def remove(session: Session, resource_id: str, address: str) -> bool:
    """Take `address` off the list (mail to it is attempted again); False if it was not on it.
    The caller commits."""
    result = session.execute(
        delete(Suppression).where(
            Suppression.resource_id == resource_id, Suppression.address == address.strip().lower()
        )
    )
    return bool(getattr(result, "rowcount", 0))
