"""Reading a history's query: filters, time ranges, page size and keyset cursors, without a framework.

Every list a customer reads (the inbound `incoming_statuses`, the outbound `messages`, and the
dashboard's pages of both) takes its parameters as a plain mapping of strings and pages the same
way, so these rules exist once. Bad input raises `InvalidQuery` with a text that says which
parameter and why; the API answers it as 422 (`views/api.py`), a page can show it.

Paging is by position, newest first: a cursor names the last row of a page (its time and id), and
the next page continues below it, so rows written while a client pages do not shift the pages it
has not read yet.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

QueryParams = Mapping[str, str]
"""A request's query parameters (one value per name; Flask's `request.args` is one)."""

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_FILTER_LENGTH = 998
"""Characters of a text filter: the longest header line RFC 5322 allows; nothing longer can match."""

MAX_ROW_ID = 2**63 - 1
"""Row ids are PostgreSQL bigints; a cursor naming a larger one was not handed out here and would
make the query fail instead of matching nothing."""


class InvalidQuery(ValueError):
    """A query parameter a history cannot use; the text says which and why, shown as it is."""


class InvalidCursor(InvalidQuery):
    """A paging cursor this service did not hand out."""

    def __init__(self) -> None:
        super().__init__("cursor is not one this API returned")


# --- Parameters ----------------------------------------------------------------------------------


def text_param(params: QueryParams, name: str) -> str | None:
    """A filter's text, or None when absent or empty (an empty filter filters nothing)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_FILTER_LENGTH:
        raise InvalidQuery(f"{name} is longer than {MAX_FILTER_LENGTH} characters")
    if "\x00" in value:
        # No stored text holds one (PostgreSQL text cannot), and the database refuses it as a parameter.
        raise InvalidQuery(f"{name} must not contain NUL characters")
    return value


def choice_param(params: QueryParams, name: str, choices: Collection[str]) -> str | None:
    """A filter that takes one of a fixed set of values (exactly as listed)."""
    value = text_param(params, name)
    if value is not None and value not in choices:
        raise InvalidQuery(f"{name} must be one of {', '.join(choices)}")
    return value


def time_param(params: QueryParams, name: str, *, end_of_day: bool) -> datetime | None:
    """An ISO 8601 date or date-time, UTC when it has no offset. A bare date is its first moment,
    or with `end_of_day` the first moment of the next day (so `until=2024-05-01` includes that day)."""
    value = text_param(params, name)
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end_of_day and day == date.max:
                return None  # the end of the calendar bounds nothing
            start = datetime.combine(day, time(), tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(
            f"{name} must be an ISO 8601 date or date-time, such as 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_range(params: QueryParams) -> tuple[datetime | None, datetime | None]:
    """`since` (inclusive) and `until` (exclusive)."""
    since = time_param(params, "since", end_of_day=False)
    until = time_param(params, "until", end_of_day=True)
    if since and until and since >= until:
        raise InvalidQuery("since must be before until")
    return since, until


def page_limit(params: QueryParams) -> int:
    raw = params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    # ASCII digits only: str.isdigit also accepts superscripts, which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


# --- Cursors -------------------------------------------------------------------------------------

K = TypeVar("K")


@dataclass(frozen=True)
class Cursor(Generic[K]):
    """Keyset position: the time and id of the last row of a page."""

    at: datetime
    key: K

    def encode(self) -> str:
        raw = f"{self.at.isoformat()}|{self.key}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def row_id(text: str) -> int:
    """The key of a bigint-keyed table, as a cursor spells it."""
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_ROW_ID:
        raise ValueError("not a row id")
    return int(text)


def uuid_key(text: str) -> uuid.UUID:
    """The key of a UUID-keyed table, in its canonical spelling (what `encode` writes)."""
    key = uuid.UUID(text)
    if str(key) != text:
        raise ValueError("not a canonical uuid")
    return key


def decode_cursor(text: str, read_key: Callable[[str], K]) -> Cursor[K]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        stamp, _, ident = raw.partition("|")
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive time")
        return Cursor(at, read_key(ident))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor() from None


def cursor_param(params: QueryParams, read_key: Callable[[str], K]) -> Cursor[K] | None:
    text = params.get("cursor")
    return decode_cursor(text, read_key) if text else None


# --- Pages ---------------------------------------------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """One page as the API and the dashboard show it: serialized items, and the cursor of the
    next page (None on the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def keyset_page(
    session: Session,
    query: Select[T],
    at: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[Any],
    *,
    limit: int,
    after: Cursor[Any] | None,
) -> tuple[list[T], Cursor[Any] | None]:
    """At most `limit` rows of `query`, newest first (`at`, then `key`), below `after`; and the
    cursor of the next page. One statement: one row more than the page tells whether one follows."""
    if after is not None:
        query = query.where(or_(at < after.at, and_(at == after.at, key < after.key)))
    query = query.order_by(at.desc(), key.desc()).limit(limit + 1)
    rows: list[T] = list(session.scalars(query))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, Cursor(getattr(last, at.key), getattr(last, key.key))


def next_page_params(params: QueryParams, next_cursor: str) -> dict[str, str]:
    """The query of the next page: the same filters and limit, the new cursor."""
    query = {name: value for name, value in params.items() if name != "cursor"}
    query["cursor"] = next_cursor
    return query


def like_pattern(value: str) -> str:
    """A case-insensitive substring match for ILIKE (with ESCAPE '\\'): wildcards in the value are literal."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def iso_time(moment: datetime | None) -> str | None:
    """Times as every API answer spells them: UTC, with `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None
