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
at a time, so memory stays flat however long the history is (the session's identity map holds
rows weakly: a partition is freed once its chunk is written); each partition becomes one chunk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer, selectinload

from ..models import Address, InboundMessage, OutboundMessage, OutboundRecipient
from ..models.base import utcnow
from .history import incoming_status
from .outbound_history import message_status
from .paging import iso_time
from .stored_messages import stored_url

VERSION = 1
PARTITION = 1000
"""Rows a server-side cursor fetches at a time (and lines in one chunk of the download)."""


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _chunk(kind: str, records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(_line({"type": kind, **record}) for record in records).encode()


def _inbound_record(row: InboundMessage, addresses: dict[int, Address]) -> dict[str, Any]:
    record = incoming_status(row)
    key = row.stored_message_key
    address = addresses.get(row.address_id) if row.address_id else None
    record["stored_message"] = {"key": key, "url": stored_url(address, key)} if key else None
    return record


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
    inbound = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.resource_id == resource_id)
        .order_by(InboundMessage.received_at, InboundMessage.id)
        .execution_options(yield_per=partition)
    )
    for rows in inbound.partitions():
        counts["inbound"] += len(rows)
        yield _chunk("inbound", (_inbound_record(row, addresses) for row in rows))
    outbound = session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.resource_id == resource_id)
        .order_by(OutboundMessage.created_at, OutboundMessage.id)
        .options(
            defer(OutboundMessage.raw),
            selectinload(OutboundMessage.recipients).selectinload(OutboundRecipient.events),
        )
        .execution_options(yield_per=partition)
    )
    for messages in outbound.partitions():
        counts["outbound"] += len(messages)
        yield _chunk("outbound", (message_status(message) for message in messages))
    yield _line({"type": "end", **counts}).encode()


def archive_name(resource_id: str, now: datetime | None = None) -> str:
    return f"cloudmailin-{resource_id}-{(now or utcnow()).strftime('%Y%m%dT%H%M%SZ')}.ndjson"
