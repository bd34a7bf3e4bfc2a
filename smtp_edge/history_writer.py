"""History rows written in batches, one transaction per batch (group commit), until committed.

Every delivery adds a history row and bumps its resource's monthly counter. Written one
transaction per message, concurrent sessions for one resource queue on that counter row's lock
for the length of a transaction each, which capped the edge at about 130 messages per second
(bench/inbound.py). Here one writer takes everything waiting, writes it in one transaction with
one counter upsert per resource and month (placed last, so the row lock is held only until the
commit), and the next batch gathers meanwhile. Each caller may wait for its own row
(`EdgeContext.record` does, for a short while).

A recording is kept until it is committed. A batch PostgreSQL could not take (`HistoryUnavailable`:
the server is down, restarting, the connection was cut, even at COMMIT) goes back to the front of
the queue and is tried again, at once and then with growing pauses, for as long as it takes; from
its second attempt on it is written idempotently (by `recording_id`), so a batch whose COMMIT may
or may not have landed is never counted twice. A batch PostgreSQL refused (a constraint, a
trigger) is retried one row per transaction, so one bad row cannot cost the others theirs; the
bad row's caller gets the error, which is the only way a recording is given up.
The writing itself is `HistoryStore.write` (history_store.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .history_store import HistoryUnavailable, Recording

log = logging.getLogger(__name__)

MAX_BATCH = 200
"""Rows per transaction; more wait for the next one."""
RETRY_DELAYS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)
"""Pauses before the 1st, 2nd, ... retry of a batch PostgreSQL could not take; the last repeats."""

WriteBatch = Callable[[Sequence[Recording], bool], Awaitable[Sequence[Recording]]]
"""Commits a batch (idempotently when told so) and returns the recordings whose rows it inserted,
or raises (HistoryStore.write)."""
Finished = Callable[[Sequence[Recording]], object]

__all__ = ["HistoryWriter", "Recording"]


@dataclass
class _Item:
    recording: Recording
    future: asyncio.Future[None]
    again: bool  # may already be committed (an earlier attempt, a spool replay): write idempotently


class HistoryWriter:
    def __init__(
        self,
        write: WriteBatch,
        keep: Callable[[asyncio.Task[None]], object],
        counted: Callable[[str, int], object] = lambda _resource_id, _messages: None,
        *,
        finished: Finished = lambda _recordings: None,
        logged: Callable[[list[str]], object] = lambda _resource_ids: None,
    ):
        self._write_batch = write
        self._keep = keep
        self._counted = counted  # told, once committed, how many messages each resource got
        self._finished = finished  # told of every recording committed or given up
        self._logged = logged  # told which resources got app log lines in a committed batch
        self._pending: list[_Item] = []
        self._writing: list[_Item] = []
        self._running = False

    def submit(self, recording: Recording, *, again: bool = False) -> asyncio.Future[None]:
        """Queue the row; the future completes once it is committed, or fails with the error of
        a refused row. `again`: it may be committed already (replayed from the spool)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(recording, future, again))
        if not self._running:
            self._running = True
            self._keep(asyncio.create_task(self._drain()))
        return future

    def uncommitted(self) -> list[Recording]:
        """Everything not committed yet (being written included), for the spool at shutdown."""
        return [item.recording for item in self._writing + self._pending if not item.future.done()]

    async def _drain(self) -> None:
        failures = 0
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                self._writing = batch
                try:
                    await self._write(batch)
                except HistoryUnavailable as exc:
                    for item in batch:
                        item.again = True
                    self._pending[:0] = [item for item in batch if not item.future.done()]
                    self._writing = []
                    delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                    failures += 1
                    log.warning(
                        "history unavailable (%s); %d rows wait, retrying in %.2fs",
                        exc, len(self._pending), delay,
                    )
                    await asyncio.sleep(delay)
                else:
                    failures = 0
                    self._writing = []
        finally:
            self._running = False
            self._writing = []
            for item in self._pending:  # only when cancelled (the edge is closing)
                item.future.cancel()
            self._pending.clear()

    async def _write(self, batch: list[_Item]) -> None:
        """Commit the batch, or raise HistoryUnavailable for the items not yet settled."""
        try:
            await self._write_counted(batch)
        except HistoryUnavailable:
            raise
        except Exception as exc:
            if len(batch) == 1:
                self._give_up(batch[0], exc)
                return
            log.warning("history batch of %d failed (%s); writing its rows one by one", len(batch), exc)
            for item in batch:  # one after the other: the store has one connection
                item.again = True  # the batch rolled back, but a row may be a spool replay
                try:
                    await self._write_counted([item])
                except HistoryUnavailable:
                    raise  # those settled stay settled; the rest go back to the queue
                except Exception as one:
                    self._give_up(item, one)

    async def _write_counted(self, batch: list[_Item]) -> None:
        recordings = [item.recording for item in batch]
        inserted = await self._write_batch(recordings, any(item.again for item in batch))
        for item in batch:
            _settle(item.future, None)
        self._finished(recordings)
        counts: Counter[str] = Counter(r.delivery.resource_id for r in inserted if r.counted)
        for resource_id, messages in counts.items():
            self._counted(resource_id, messages)
        logged = sorted({r.delivery.resource_id for r in inserted if r.log_line is not None})
        if logged:
            self._logged(logged)

    def _give_up(self, item: _Item, error: Exception) -> None:
        _settle(item.future, error)
        self._finished([item.recording])


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
