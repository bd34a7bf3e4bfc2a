"""The history spool's file (smtp_edge/spool.py): what an edge that stopped mid-outage left is read
back whole, a line cut short by a crash is skipped, an unreadable one is kept for a person, and
the file is emptied only once nothing in it is owed any more."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from provider.services.history import Delivery
from smtp_edge.history_store import Recording
from smtp_edge.spool import Spool, dump, spool_path


def recording(subject: str) -> Recording:
    delivery = Delivery(
        resource_id="r",
        address_id=7,
        envelope_from="a@sender.example",
        envelope_to="box@cloudmailin.test",
        recipients=["box@cloudmailin.test", "other@cloudmailin.test"],
        status="201",
        smtp_reply="250 2.0.0 Message accepted by the target (HTTP 201)",
        subject=subject,
        received_at=datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=UTC),
    )
    return Recording(delivery, True, f"cloudmailin: {subject}")


async def replay_then(path: Path, done: bool) -> list[Recording]:
    tasks: set[asyncio.Task[None]] = set()
    spool = Spool(path, tasks.add)
    replayed = await spool.replay()
    if done:
        spool.done(replayed)
    await asyncio.gather(*tasks)
    await spool.close()
    return replayed


def test_what_a_previous_run_left_is_replayed_and_the_file_emptied_once_committed(tmp_path: Path) -> None:
    first, second = recording("first"), recording("second ünïcode")
    path = spool_path(tmp_path)
    path.write_bytes(dump(first) + dump(second) + dump(first) + dump(recording("cut"))[:40])
    replayed = asyncio.run(replay_then(path, done=False))
    assert sorted(replayed, key=lambda r: r.delivery.subject or "") == [first, second]
    assert path.read_bytes() != b""  # still owed
    asyncio.run(replay_then(path, done=True))
    assert path.read_bytes() == b""
    assert list(tmp_path.glob("*.unreadable")) == []


def test_an_unreadable_line_is_kept_aside(tmp_path: Path) -> None:
    path = spool_path(tmp_path)
    path.write_bytes(dump(recording("good")) + b"{not json\n")
    replayed = asyncio.run(replay_then(path, done=True))
    assert [r.delivery.subject for r in replayed] == ["good"]
    (kept,) = tmp_path.glob("*.unreadable")
    assert b"{not json" in kept.read_bytes()


def test_appended_recordings_are_on_disk_until_done(tmp_path: Path) -> None:
    path = spool_path(tmp_path)
    spooled = [recording("one"), recording("two")]

    async def run() -> tuple[bytes, bytes]:
        tasks: set[asyncio.Task[None]] = set()
        spool = Spool(path, tasks.add)
        await spool.replay()
        await spool.append(spooled)
        on_disk = path.read_bytes()
        spool.done(spooled)
        await asyncio.gather(*tasks)
        await spool.close()
        return on_disk, path.read_bytes()

    on_disk, after = asyncio.run(run())
    assert on_disk == b"".join(dump(r) for r in spooled)
    assert after == b""
