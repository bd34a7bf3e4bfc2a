"""The edge's history writes, on the event loop, over one PostgreSQL connection of their own.

Written through SQLAlchemy in a DB thread, a batch cost the edge about 0.4 ms of CPU per message
(bench/inbound.py): a thread hop and a GIL hand-over, a pool checkout with its ping and the
session's bookkeeping, for what is four statements. The history writer runs one batch at a time,
so one psycopg AsyncConnection serves it: in one transaction, COPY the history rows, COPY the app
log lines, one usage upsert per resource and month (last, so each counter row is locked only
until the commit).

A connection that broke is dropped and the next batch makes a new one. Any failure of the
connection (before or at COMMIT) is `HistoryUnavailable`, and the writer tries the batch again.
A batch that may already be committed (its COMMIT failed, or it comes from the spool) is written
`again`: the rows are COPYed into a temporary table and inserted with `ON CONFLICT (recording_id)
DO NOTHING`, and only the rows inserted get their log line and their count. The first attempt of
a batch, which is every batch while PostgreSQL is well, COPYs straight into the table.
"""


from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg import sql

from provider.db import CONNECT_TIMEOUT, libpq_url
from provider.models import AppLogLine, InboundMessage
from provider.models.base import utcnow
from provider.services import applog
from provider.services.history import HISTORY_COLUMNS, Delivery, history_values
from provider.services.usage import count_inbound_params, count_inbound_sql, month_start
from provider.settings import Settings

log = logging.getLogger(__name__)

APPLICATION_NAME = "cloudmailin-edge-history"
"""How the writer's connection shows in pg_stat_activity."""


@dataclass(frozen=True)
class Recording:
    delivery: Delivery
    counted: bool  # the message counts towards the monthly quota
    log_line: str | None  # for the app's log; None when the resource has no log drain


def _copy(table: str, columns: Sequence[str]) -> sql.Composed:
    names = sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    return sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)


class HistoryUnavailable(Exception):
    """PostgreSQL could not take the batch (down, restarting, connection cut); whether a COMMIT
    under way landed is unknown, so the batch is to be written `again`."""


_AGAIN_TABLE = "edge_history_again"

TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
"""SQLSTATE classes that say nothing about the rows: connection exception, transaction rollback
(serialization, deadlock), insufficient resources (disk full, too many connections), operator
intervention (shutdown, cancel), system error. Other errors (a constraint, a trigger, a program
limit) would fail again the same way, so their batch is split and the bad row given up."""


def _unavailable(error: psycopg.Error, connection: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
    if isinstance(error, psycopg.InterfaceError) or connection.broken or connection.closed:
        return True
    state = error.sqlstate
    return state is None or state[:2] in TRANSIENT_CLASSES


class HistoryStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._connection: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._lock = asyncio.Lock()
        self._copy_rows = _copy(InboundMessage.__tablename__, HISTORY_COLUMNS)
        self._copy_again = _copy(_AGAIN_TABLE, HISTORY_COLUMNS)
        self._copy_lines = _copy(AppLogLine.__tablename__, applog.LINE_COLUMNS)
        columns = sql.SQL(", ").join(sql.Identifier(column) for column in HISTORY_COLUMNS)
        self._create_again = sql.SQL(
            "CREATE TEMPORARY TABLE {again} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"
        ).format(
            again=sql.Identifier(_AGAIN_TABLE),
            columns=columns,
            table=sql.Identifier(InboundMessage.__tablename__),
        )
        self._insert_again = sql.SQL(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {again} "
            "ON CONFLICT (recording_id) DO NOTHING RETURNING recording_id"
        ).format(
            again=sql.Identifier(_AGAIN_TABLE),
            columns=columns,
            table=sql.Identifier(InboundMessage.__tablename__),
        )

    async def write(self, recordings: Sequence[Recording], again: bool = False) -> Sequence[Recording]:
        """Commit the batch's history rows, app log lines and counts and return the recordings
        inserted (all of them, unless `again` found some already there). Raises
        HistoryUnavailable when the connection failed, or what PostgreSQL raised when it refused
        the batch (nothing of it is then kept)."""
        async with self._lock:  # one transaction at a time on the one connection
            connection = await self._connect()
            try:
                async with connection.transaction(), connection.cursor() as cursor:
                    inserted: Sequence[Recording]
                    if again:
                        inserted = await self._insert_again_rows(cursor, recordings)
                    else:
                        async with cursor.copy(self._copy_rows) as copy:
                            for recording in recordings:
                                await copy.write_row(history_values(recording.delivery))
                        inserted = recordings
                    await self._lines_and_counts(cursor, inserted)
            except psycopg.Error as exc:
                if connection.broken or connection.closed:
                    await self._drop()
                if _unavailable(exc, connection):
                    raise HistoryUnavailable(str(exc).strip() or type(exc).__name__) from exc
                raise
        return inserted

    async def _insert_again_rows(
        self, cursor: psycopg.AsyncCursor[tuple[object, ...]], recordings: Sequence[Recording]
    ) -> list[Recording]:
        await cursor.execute(self._create_again)
        async with cursor.copy(self._copy_again) as copy:
            for recording in recordings:
                await copy.write_row(history_values(recording.delivery))
        await cursor.execute(self._insert_again)
        new = {row[0] for row in await cursor.fetchall()}
        return [r for r in recordings if r.delivery.recording_id in new]

    async def _lines_and_counts(
        self, cursor: psycopg.AsyncCursor[tuple[object, ...]], inserted: Sequence[Recording]
    ) -> None:
        lines = [(r.delivery.resource_id, r.log_line) for r in inserted if r.log_line is not None]
        if lines:
            async with cursor.copy(self._copy_lines) as copy:
                for row in applog.line_rows(lines, utcnow()):
                    await copy.write_row(row)
        counts: Counter[tuple[str, date]] = Counter()
        when: dict[tuple[str, date], datetime] = {}
        for recording in inserted:
            if recording.counted:
                key = (recording.delivery.resource_id, month_start(recording.delivery.received_at))
                counts[key] += 1
                when.setdefault(key, recording.delivery.received_at)
        for key, messages in sorted(counts.items()):  # last: each counter row locked until COMMIT
            await cursor.execute(
                count_inbound_sql(), count_inbound_params(key[0], when[key], messages)
            )

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            with contextlib.suppress(psycopg.Error):
                await connection.close()

    async def close(self) -> None:
        await self._drop()

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            try:
                self._connection = await psycopg.AsyncConnection.connect(
                    libpq_url(self._settings.database_url),
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT,
                    application_name=APPLICATION_NAME,
                )
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise HistoryUnavailable(str(exc).strip() or type(exc).__name__) from exc
        return self._connection
