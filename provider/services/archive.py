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

Rows come through server-side cursors (`yield_per`, which sets `stream_results`) a partition
at a time, as plain rows rather than ORM objects (the API's `incoming_status` and `message_status`
read attributes, which rows have as well: the same shapes at several times the speed), so memory
stays flat however long the history is; each partition becomes one chunk.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Session

from ..models import Address, InboundMessage, OutboundEvent, OutboundMessage, OutboundRecipient
from ..models.base import utcnow
from .history import incoming_status
from .outbound_history import message_status
from .paging import iso_time
from .stored_messages import stored_url

VERSION = 1
PARTITION = 1000
"""Rows a server-side cursor fetches at a time (and lines in one chunk of the download)."""


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""One encoder for every line (json.dumps with options builds a new one per call)."""


def _line(record: dict[str, Any]) -> str:
    return _ENCODER.encode(record) + "\n"


def _chunk(kind: str, records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(_line({"type": kind, **record}) for record in records).encode()


def _inbound_record(row: Any, addresses: dict[int, Address]) -> dict[str, Any]:
    record = incoming_status(row)
    key = row.stored_message_key
    address = addresses.get(row.address_id) if row.address_id else None
    record["stored_message"] = {"key": key, "url": stored_url(address, key)} if key else None
    return record


_MESSAGE_COLUMNS = [c for c in OutboundMessage.__table__.columns if c.key != "raw"]


def _outbound_records(connection: Connection, messages: Sequence[Any]) -> Iterator[dict[str, Any]]:
    """`message_status` of each message, its recipients and their events read in two statements
    for the whole partition as plain rows (what `selectinload` does, without building ORM objects)."""
    recipients: dict[Any, list[Any]] = defaultdict(list)
    events: dict[int, list[Any]] = defaultdict(list)
    for row in connection.execute(
        select(OutboundRecipient.__table__)
        .where(OutboundRecipient.message_id == any_(bindparam("ids", type_=ARRAY(PgUUID(as_uuid=True)))))
        .order_by(OutboundRecipient.id),
        {"ids": [message.id for message in messages]},
    ):
        recipients[row.message_id].append(row)
    ids = [row.id for rows in recipients.values() for row in rows]
    if ids:
        for event in connection.execute(
            select(OutboundEvent.__table__)
            .where(OutboundEvent.recipient_id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
            .order_by(OutboundEvent.id),
            {"ids": ids},
        ):
            events[event.recipient_id].append(event)
    for message in messages:
        yield message_status(message, recipients=recipients.get(message.id, ()), events_of=events)


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
    # Plain rows, not ORM objects: `incoming_status` reads attributes, which rows have too, and
    # building a million instrumented objects was most of the archive's time.
    connection = session.connection()  # Core results: the ORM's loading adds nothing for plain rows
    inbound = connection.execute(
        select(InboundMessage.__table__)
        .where(InboundMessage.resource_id == resource_id)
        .order_by(InboundMessage.received_at, InboundMessage.id)
        .execution_options(yield_per=partition)
    )
    for rows in inbound.partitions():
        counts["inbound"] += len(rows)
        yield _chunk("inbound", (_inbound_record(row, addresses) for row in rows))
    outbound = connection.execute(
        select(*_MESSAGE_COLUMNS)
        .where(OutboundMessage.resource_id == resource_id)
        .order_by(OutboundMessage.created_at, OutboundMessage.id)
        .execution_options(yield_per=partition)
    )
    for messages in outbound.partitions():
        counts["outbound"] += len(messages)
        yield _chunk("outbound", _outbound_records(connection, messages))
    yield _line({"type": "end", **counts}).encode()


def archive_name(resource_id: str, now: datetime | None = None) -> str:
    return f"cloudmailin-{resource_id}-{(now or utcnow()).strftime('%Y%m%dT%H%M%SZ')}.ndjson"
