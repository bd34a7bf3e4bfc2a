"""The edge's history writes, on the event loop, over one PostgreSQL connection of their own.

Written through SQLAlchemy in a DB thread, a batch cost the edge about 0.4 ms of CPU per message
(bench/inbound.py): a thread hop and a GIL hand-over, a pool checkout with its ping and the
session's bookkeeping, for what is four statements. The history writer runs one batch at a time,
so one psycopg AsyncConnection serves it: in one transaction, COPY the history rows, COPY the app
log lines, one usage upsert per resource and month (last, so each counter row is locked only
until the commit). A connection that broke is dropped and a new one made; a batch whose
connection was gone before its COMMIT was sent (a server restart, an idle connection cut) is
written once more on the new one, so a reconnect loses no row. One that failed at COMMIT is not:
its outcome is unknown, and writing it again could count its messages twice.
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
from redis.asyncio import Redis

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


class _Unsent(Exception):
    """The batch's transaction failed on a broken connection before its COMMIT was sent."""

    def __init__(self, error: psycopg.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


class HistoryStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._connection: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._redis: Redis | None = None
        self._lock = asyncio.Lock()
        self._copy_rows = _copy(InboundMessage.__tablename__, HISTORY_COLUMNS)
        self._copy_lines = _copy(AppLogLine.__tablename__, applog.LINE_COLUMNS)

    async def write(self, recordings: Sequence[Recording]) -> None:
        """Commit the batch's history rows, app log lines and counts, or raise what PostgreSQL
        raised (nothing of the batch is then kept)."""
        counts: Counter[tuple[str, date]] = Counter()
        when: dict[tuple[str, date], datetime] = {}
        for recording in recordings:
            if recording.counted:
                key = (recording.delivery.resource_id, month_start(recording.delivery.received_at))
                counts[key] += 1
                when.setdefault(key, recording.delivery.received_at)
        lines = [(r.delivery.resource_id, r.log_line) for r in recordings if r.log_line is not None]
        async with self._lock:  # one transaction at a time on the one connection
            try:
                await self._write(recordings, lines, counts, when)
            except _Unsent:
                # The connection was gone before anything was committed (the server restarted,
                # an idle connection was cut): the same batch once more, on a new connection.
                try:
                    await self._write(recordings, lines, counts, when)
                except _Unsent as again:
                    raise again.error from None
        if lines:
            await applog.request_shipping_async(
                self._redis_client(), self._settings, (resource_id for resource_id, _ in lines)
            )

    async def _write(
        self,
        recordings: Sequence[Recording],
        lines: list[tuple[str, str]],
        counts: Counter[tuple[str, date]],
        when: dict[tuple[str, date], datetime],
    ) -> None:
        connection = await self._connect()
        committing = False
        try:
            async with connection.transaction(), connection.cursor() as cursor:
                async with cursor.copy(self._copy_rows) as copy:
                    for recording in recordings:
                        await copy.write_row(history_values(recording.delivery))
                if lines:
                    async with cursor.copy(self._copy_lines) as copy:
                        for row in applog.line_rows(lines, utcnow()):
                            await copy.write_row(row)
                for key, messages in sorted(counts.items()):
                    await cursor.execute(
                        count_inbound_sql(), count_inbound_params(key[0], when[key], messages)
                    )
                committing = True
        except psycopg.OperationalError as exc:
            await self._drop()
            # A failure at COMMIT leaves the outcome unknown: writing again could count twice.
            if not committing:
                raise _Unsent(exc) from exc
            raise
        except psycopg.Error:
            if connection.broken or connection.closed:
                await self._drop()
            raise

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            with contextlib.suppress(psycopg.Error):
                await connection.close()

    async def close(self) -> None:
        await self._drop()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            self._connection = await psycopg.AsyncConnection.connect(
                libpq_url(self._settings.database_url),
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name=APPLICATION_NAME,
            )
        return self._connection

    def _redis_client(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(self._settings.redis_url)
        return self._redis
