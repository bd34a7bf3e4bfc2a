"""A local, append-only file of recordings not yet committed, so an outage loses none.

The reply to a sender follows the target's answer; its history row and monthly count are a
recording the edge owes PostgreSQL. A session waits a short while (`EdgeContext.record`,
`SPOOL_AFTER`) for the history writer to commit it, which is what happens on the hot path, so
the hot path writes no file at all. Only a recording not committed by then (PostgreSQL stopped,
a slow failover) is appended here, flushed and fsynced, before the session replies; the writer
keeps it and keeps retrying. Appends wait for each other the way batches do in the writer: all
lines waiting are written with one write and one fsync.

Once nothing spooled is left uncommitted, the file is emptied. At start the edge reads what a
previous run left (it stopped or crashed while PostgreSQL was away) and hands it to the writer
again; every recording carries its id (`Delivery.recording_id`), the writer's second attempts
insert with `ON CONFLICT (recording_id) DO NOTHING` and count only rows they inserted, so a
recording both committed and still in the file stays one row and one count.

The file is the edge's own: one edge process per `SMTP_DATA_DIR`. A line cut short by a crash
mid-append was never acknowledged to its sender (the reply waits for the fsync) and is skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from provider.services.history import Delivery

from .history_store import Recording

log = logging.getLogger(__name__)

SPOOL_FILE = "history-spool.jsonl"
FORMAT = 1


def spool_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / SPOOL_FILE


def dump(recording: Recording) -> bytes:
    delivery = dataclasses.asdict(recording.delivery)
    delivery["received_at"] = recording.delivery.received_at.isoformat()
    delivery["recording_id"] = str(recording.delivery.recording_id)
    delivery["recipients"] = list(recording.delivery.recipients)
    entry = {"v": FORMAT, "counted": recording.counted, "log_line": recording.log_line,
             "delivery": delivery}
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def load(line: bytes) -> Recording:
    """One spooled recording; ValueError/KeyError/TypeError for a line that is not one."""
    entry: dict[str, Any] = json.loads(line)
    if entry.get("v") != FORMAT:
        raise ValueError(f"spool format {entry.get('v')!r}")
    fields = dict(entry["delivery"])
    fields["received_at"] = datetime.fromisoformat(fields["received_at"])
    fields["recording_id"] = UUID(fields["recording_id"])
    return Recording(Delivery(**fields), bool(entry["counted"]), entry["log_line"])


class Spool:
    def __init__(self, path: Path, keep: Callable[[asyncio.Task[None]], object]) -> None:
        self.path = path
        self._keep = keep
        self._outstanding: set[UUID] = set()  # spooled, neither committed nor refused yet
        self._queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self._running = False
        self._dirty = True  # a previous run may have left lines; emptied once none is owed
        self._replayed = False  # and never before they were read
        self._closed = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="edge-spool")

    async def append(self, recordings: Sequence[Recording]) -> None:
        """Return once the recordings are on disk (fsynced); raises OSError if they cannot be."""
        if not recordings:
            return
        self._outstanding.update(r.delivery.recording_id for r in recordings)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((b"".join(dump(r) for r in recordings), future))
        self._kick()
        await asyncio.shield(future)

    def done(self, recordings: Sequence[Recording]) -> None:
        """The writer is done with these (committed, or refused for good): no longer owed."""
        if not self._outstanding:
            return
        self._outstanding.difference_update(r.delivery.recording_id for r in recordings)
        if not self._outstanding:
            self._kick()

    async def replay(self) -> list[Recording]:
        """What a previous run left, still owed until `done` says otherwise."""
        loop = asyncio.get_running_loop()
        recordings = await loop.run_in_executor(self._thread, self._read)
        self._replayed = True
        self._outstanding.update(r.delivery.recording_id for r in recordings)
        self._kick()  # nothing left: empty the file
        return recordings

    async def close(self) -> None:
        """Finish the appends and the emptying under way."""
        self._closed = True  # what is committed from now on is emptied by the next run's replay
        while self._running:
            await asyncio.sleep(0.01)
        self._thread.shutdown(wait=True)

    def _kick(self) -> None:
        if not self._running and not self._closed:
            self._running = True
            self._keep(asyncio.create_task(self._drain()))

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self._queue:
                    batch, self._queue = self._queue, []
                    data = b"".join(chunk for chunk, _ in batch)
                    try:
                        await loop.run_in_executor(self._thread, self._append, data)
                    except OSError as exc:
                        for _, future in batch:
                            if not future.done():
                                future.set_exception(exc)
                    else:
                        self._dirty = True
                        for _, future in batch:
                            if not future.done():
                                future.set_result(None)
                elif self._dirty and self._replayed and not self._outstanding:
                    try:
                        await loop.run_in_executor(self._thread, self._empty)
                    except OSError:
                        log.exception("could not empty the history spool %s", self.path)
                    self._dirty = False
                else:
                    return
        finally:
            self._running = False
            for _, future in self._queue:  # only when cancelled (the edge is closing)
                future.cancel()
            self._queue.clear()

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _empty(self) -> None:
        if self.path.exists():
            os.truncate(self.path, 0)

    def _read(self) -> list[Recording]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = raw.split(b"\n")
        if lines[-1]:  # no newline yet: an append cut short, never acknowledged
            log.warning("history spool %s: skipped a line cut short by a crash", self.path)
        recordings: dict[UUID, Recording] = {}
        skipped = 0
        for line in lines[:-1]:
            if not line.strip():
                continue
            try:
                recording = load(line)
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            recordings[recording.delivery.recording_id] = recording  # spooled twice: one
        if skipped:
            kept = self.path.with_name(f"{self.path.name}.{int(time.time())}.unreadable")
            kept.write_bytes(raw)  # kept for a person to look at; the file itself is emptied
            log.error("history spool %s: %d unreadable lines (a copy is in %s)", self.path, skipped, kept)
        if recordings:
            log.warning("history spool %s: replaying %d recordings", self.path, len(recordings))
        return list(recordings.values())
