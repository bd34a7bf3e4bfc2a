"""History rows written in batches, one transaction per batch (group commit).

Every delivery adds a history row and bumps its resource's monthly counter. Written one
transaction per message, concurrent sessions for one resource queue on that counter row's lock
for the length of a transaction each, which capped the edge at about 130 messages per second
(bench/inbound.py). Here one writer takes everything waiting, writes it in one transaction with
one counter upsert per resource and month (placed last, so the row lock is held only until the
commit), and the next batch gathers meanwhile. Each caller still waits for its own row, so a
reply is sent after the row is committed, exactly as before.

A batch that fails is retried one row per transaction, so one bad row cannot lose the others'.
The writing itself is `HistoryStore.write` (history_store.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from .history_store import Recording

log = logging.getLogger(__name__)

MAX_BATCH = 200
"""Rows per transaction; more wait for the next one."""

WriteBatch = Callable[[list[Recording]], Awaitable[None]]
"""Commits a batch's rows and counts, or raises (HistoryStore.write)."""

__all__ = ["HistoryWriter", "Recording"]


class HistoryWriter:
    def __init__(
        self,
        write: WriteBatch,
        keep: Callable[[asyncio.Task[None]], object],
        counted: Callable[[str, int], object] = lambda _resource_id, _messages: None,
    ):
        self._write_batch = write
        self._keep = keep
        self._counted = counted  # told, once committed, how many messages each resource got
        self._pending: list[tuple[Recording, asyncio.Future[None]]] = []
        self._running = False

    def submit(self, recording: Recording) -> asyncio.Future[None]:
        """Queue the row; the future completes once it is committed (or fails with the error)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((recording, future))
        if not self._running:
            self._running = True
            self._keep(asyncio.create_task(self._drain()))
        return future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._write(batch)
        finally:
            self._running = False
            for _, future in self._pending:  # only when cancelled (the edge is closing)
                future.cancel()
            self._pending.clear()

    async def _write(self, batch: list[tuple[Recording, asyncio.Future[None]]]) -> None:
        try:
            await self._write_counted([recording for recording, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            log.warning("history batch of %d failed (%s); writing its rows one by one", len(batch), exc)
            for item in batch:  # one after the other: the store has one connection
                await self._write_one(item)
            return
        for _, future in batch:
            _settle(future, None)

    async def _write_one(self, item: tuple[Recording, asyncio.Future[None]]) -> None:
        recording, future = item
        try:
            await self._write_counted([recording])
        except Exception as exc:
            _settle(future, exc)
        else:
            _settle(future, None)

    async def _write_counted(self, recordings: list[Recording]) -> None:
        await self._write_batch(recordings)
        counts: Counter[str] = Counter(r.delivery.resource_id for r in recordings if r.counted)
        for resource_id, messages in counts.items():
            self._counted(resource_id, messages)


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
