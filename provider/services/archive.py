"""The whole history of one resource as newline-delimited JSON, for keeping before `addons:destroy`.

One file, one JSON object a line, each with a `type`:

- `archive` (first line): the format `version`, the `resource_id` and when the archive was made;
- `inbound`: one inbound history row, the fields of `GET .../incoming_statuses`, and
  `stored_message`: `{"key", "url"}` of the raw message when the address's message store kept it
  (`url` null when the address has no store now), else null;
- `outbound`: one sent message with its recipients, each with its events (the fields of
  `GET .../messages/<id>`); the message's raw MIME is not included;
- `end` (last line): how many `inbound` and `outbound` lines came before it, so a reader can tell
  a complete archive from a cut-off download.

Stored messages are named, not embedded: a message store is always the customer's own bucket
(they give its name and credentials; the add-on keeps no store of its own), so the objects stay
theirs after `addons:destroy` and the key is what finds them. Embedding them (base64) would cost a
GET per row, make the archive as large as all the mail ever kept, and make the download depend on
the store answering.

NDJSON rather than a zip of files: it streams as it is produced (no central directory to write
at the end), any JSON tool reads it line by line, and `gzip` over HTTP is left to the client.

The database writes each line's JSON (`json_build_object` of the same field lists the API's
`incoming_status` and `message_status` read, services/json_fields.py; a message's recipients and
events aggregated beside it), so the web process only joins text: a million rows stream at
several times the rate Python built and encoded them (bench/dashboard.py). Rows come through
server-side cursors (`yield_per`, which sets `stream_results`) a partition at a time, so memory
stays flat however long the history is; each partition becomes one chunk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from ..models import Address, InboundMessage, OutboundEvent, OutboundMessage, OutboundRecipient
from ..models.base import utcnow
from .history import INCOMING_FIELDS
from .json_fields import json_object
from .outbound_history import EVENT_FIELDS, MESSAGE_FIELDS, RECIPIENT_FIELDS
from .paging import iso_time
from .stored_messages import stored_url

VERSION = 1
PARTITION = 1000
"""Rows a server-side cursor fetches at a time (and lines in one chunk of the download)."""


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_EMPTY: ColumnElement[Any] = literal_column("'[]'::json")


def _line(record: dict[str, Any]) -> str:
    return _ENCODER.encode(record) + "\n"


def _inbound_lines(
    rows: Sequence[Any], addresses: dict[int, Address]
) -> Iterator[str]:
    """The database's JSON of each row, and `stored_message` added here (its URL is the store
    module's rule: `stored_messages.stored_url`)."""
    for text, key, address_id in rows:
        if key:
            kept = _ENCODER.encode({"key": key, "url": stored_url(addresses.get(address_id), key)})
        else:
            kept = "null"
        yield f'{text[:-1]},"stored_message":{kept}}}\n'


def _inbound_query(resource_id: str) -> Select[Any]:
    table = InboundMessage.__table__
    return (
        select(cast(json_object(INCOMING_FIELDS, table, kind="inbound"), Text),
               table.c.stored_message_key, table.c.address_id)
        .where(table.c.resource_id == resource_id)
        .order_by(table.c.received_at, table.c.id)
    )


def _outbound_query(resource_id: str) -> Select[Any]:
    """Each message with its recipients and their events, in id order, as one JSON object."""
    message, recipient, event = (
        OutboundMessage.__table__, OutboundRecipient.__table__, OutboundEvent.__table__)
    events = (
        select(func.coalesce(func.json_agg(aggregate_order_by(json_object(EVENT_FIELDS, event), event.c.id)),
                             _EMPTY))
        .where(event.c.recipient_id == recipient.c.id)
        .scalar_subquery()
    )
    recipients = (
        select(func.coalesce(func.json_agg(aggregate_order_by(
            json_object(RECIPIENT_FIELDS, recipient, events=events), recipient.c.id)), _EMPTY))
        .where(recipient.c.message_id == message.c.id)
        .scalar_subquery()
    )
    return (
        select(cast(json_object(MESSAGE_FIELDS, message, kind="outbound", recipients=recipients), Text))
        .where(message.c.resource_id == resource_id)
        .order_by(message.c.created_at, message.c.id)
    )


def archive_chunks(
    session: Session, resource_id: str, *, now: datetime | None = None, partition: int = PARTITION
) -> Iterator[bytes]:
    """The archive of `resource_id` as chunks of whole lines, oldest rows first."""
    yield _line({
        "type": "archive", "version": VERSION, "resource_id": resource_id,
        "created_at": iso_time(now or utcnow()),
    }).encode()
    counts = {"inbound": 0, "outbound": 0}
    addresses = {
        address.id: address
        for address in session.scalars(select(Address).where(Address.resource_id == resource_id))
    }
    connection = session.connection()
    inbound = connection.execute(_inbound_query(resource_id).execution_options(yield_per=partition))
    for rows in inbound.partitions():
        counts["inbound"] += len(rows)
        yield "".join(_inbound_lines(rows, addresses)).encode()
    outbound = connection.execute(_outbound_query(resource_id).execution_options(yield_per=partition))
    for rows in outbound.partitions():
        counts["outbound"] += len(rows)
        yield "".join(f"{text}\n" for (text,) in rows).encode()
    yield _line({"type": "end", **counts}).encode()


def archive_name(resource_id: str, now: datetime | None = None) -> str:
    return f"cloudmailin-{resource_id}-{(now or utcnow()).strftime('%Y%m%dT%H%M%SZ')}.ndjson"
