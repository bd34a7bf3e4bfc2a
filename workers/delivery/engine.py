"""One delivery run: claim due recipients, send each message once per destination domain over
pooled connections, and write the outcomes back as they arrive.

Outcomes are committed in groups while later transactions are still in flight (the first group
as soon as its transaction ends), so the window in which a worker killed with `kill -9` would
send a delivered recipient again (between the remote 250 and the commit) is one short write, as
in any MTA. The run stops after `budget` seconds so a warm shutdown never waits long; what is
left is still due in PostgreSQL and the next run takes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session

from . import store
from .mx import DestinationError, MxResolver
from .store import Claimed, Message, Result
from .transport import ConnectionPool, Reply

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH = 200
"""Recipients claimed at once."""
CONCURRENT_TRANSACTIONS = 64


def _now() -> datetime:
    return datetime.now(UTC)


def bounce_address(message_id: uuid.UUID, bounce_domain: str) -> str:
    """The envelope sender (VERP): a bounce names its message by the address it comes back to."""
    return f"bounces+{message_id}@{bounce_domain}"


@dataclass
class RunReport:
    attempted: int = 0
    delivered: int = 0
    more: bool = False
    """Due recipients were left because the run's budget ran out."""


class Engine:
    def __init__(
        self,
        sessions: Callable[[], Session],
        pool: ConnectionPool,
        mx: MxResolver,
        bounce_domain: str,
        lease: timedelta,
        sign: Callable[[Session, Message], bytes] | None = None,
    ) -> None:
        self.sessions = sessions
        self.lease = lease
        self.pool = pool
        self.mx = mx
        self.bounce_domain = bounce_domain
        self.sign = sign

    def _with_session(self, work: Callable[[Session], T]) -> T:
        with self.sessions() as session:
            return work(session)

    async def run(
        self, first: uuid.UUID | None = None, budget: float = 20.0,
        more_due: Callable[[], object] | None = None,
    ) -> RunReport:
        """Deliver what is due, `first`'s recipients first, for about `budget` seconds.

        `more_due` is called (in a thread) whenever a claim comes back full: more is due than
        this run can take at once, so another worker should be woken to share it."""
        report = RunReport()
        deadline = time.monotonic() + budget
        while True:
            now = _now()

            def take(session: Session, now: datetime = now) -> list[Claimed]:
                claimed: list[Claimed] = []
                if first is not None and report.attempted == 0:
                    claimed = store.claim(session, now, self.lease, BATCH, first)
                return claimed + store.claim(session, now, self.lease, BATCH - len(claimed))

            claimed: list[Claimed] = await asyncio.to_thread(self._with_session, take)
            if not claimed:
                return report
            report.attempted += len(claimed)
            if more_due is not None and len(claimed) >= BATCH:
                await asyncio.to_thread(_quietly, more_due)
            delivered = await self._deliver(claimed)
            report.delivered += delivered
            if time.monotonic() >= deadline:
                report.more = True
                return report

    async def _deliver(self, claimed: list[Claimed]) -> int:
        def load(session: Session) -> tuple[dict[uuid.UUID, Message], dict[uuid.UUID, bytes]]:
            found = store.messages(session, {c.message_id for c in claimed})
            signed = {
                mid: (self.sign(session, message) if self.sign else b"") + message.raw
                for mid, message in found.items()
            }
            return found, signed

        found, signed = await asyncio.to_thread(self._with_session, load)
        groups: dict[tuple[uuid.UUID, str], list[Claimed]] = defaultdict(list)
        for recipient in claimed:
            groups[(recipient.message_id, recipient.domain)].append(recipient)
        writer = _Writer(self, {mid: m.created_at for mid, m in found.items()})
        slots = asyncio.Semaphore(CONCURRENT_TRANSACTIONS)

        async def one(message_id: uuid.UUID, domain: str, recipients: list[Claimed]) -> None:
            async with slots:
                if message_id not in found:  # deleted since the claim (the add-on was removed)
                    return
                results = await self._transaction(message_id, domain, recipients, signed[message_id])
            writer.add(results)

        await asyncio.gather(*(one(mid, domain, rs) for (mid, domain), rs in groups.items()))
        await writer.close()
        return writer.delivered

    async def _transaction(
        self, message_id: uuid.UUID, domain: str, recipients: list[Claimed], data: bytes
    ) -> list[Result]:
        try:
            destination = await asyncio.to_thread(self.mx.destination, domain)
        except DestinationError as error:
            reply = Reply(int(error.reply[:3]), error.reply)
            return [Result(r, reply, None) for r in recipients]
        try:
            sender = bounce_address(message_id, self.bounce_domain)
            outcome = await self.pool.send(destination, sender, [r.address for r in recipients], data)
        except Exception:
            # A bug must not lose the recipients: they are deferred and retried like any 4xx.
            log.exception("delivery of %s to %s crashed", message_id, domain)
            reply = Reply(451, "451 4.3.0 Local error in the delivery worker; will retry")
            return [Result(r, reply, None) for r in recipients]
        return [Result(r, outcome.replies[r.address], outcome.host) for r in recipients]


def _quietly(call: Callable[[], object]) -> None:
    try:
        call()
    except Exception:
        # Redis away: this run goes on alone, and the poller wakes others once it is back.
        log.warning("could not wake another delivery worker", exc_info=True)


class _Writer:
    """Commits results in groups: whatever finished while the previous write ran."""

    def __init__(self, engine: Engine, accepted: dict[uuid.UUID, datetime]) -> None:
        self.engine = engine
        self.accepted = accepted
        self.pending: list[Result] = []
        self.task: asyncio.Task[None] | None = None
        self.delivered = 0

    def add(self, results: list[Result]) -> None:
        self.pending.extend(results)
        self.delivered += sum(1 for r in results if r.reply.success)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []

            def write(session: Session, batch: list[Result] = batch) -> None:
                store.record(session, batch, self.accepted, _now())

            await asyncio.to_thread(self.engine._with_session, write)

    async def close(self) -> None:
        while self.task is not None and not self.task.done():
            await self.task
        if self.pending:
            await self._drain()
