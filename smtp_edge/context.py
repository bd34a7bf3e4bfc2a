"""What every SMTP session of the process shares: settings, HTTP and DB pools, worker threads.

Blocking work never runs on the event loop: database calls go to a small thread pool sized like
the SQLAlchemy connection pool, parsing and rendering messages to another. A history write that
is slow (database outage) is waited for only so long: then the recording goes to the spool
(spool.py) before the reply, and the writer keeps it until PostgreSQL takes it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import aiohttp
import dns.resolver
from sqlalchemy.orm import Session, sessionmaker

from provider.db import session_factory
from provider.dns import make_resolver
from provider.inbound.envelope import SpfResult
from provider.settings import Settings

from .auth_results import AuthChecker, AuthResults
from .history_store import HistoryStore
from .history_writer import HistoryWriter, Recording
from .log_shipping import ShippingRequests
from .poster import TargetPoster
from .routes import RouteCache
from .spf import SpfChecker
from .spool import Spool, spool_path

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

DB_THREADS = 8
INLINE_MESSAGE_BYTES = 32 * 1024
"""Messages below this size are parsed and rendered on the event loop itself."""
LARGE_MESSAGE_BYTES = 1 << 20
"""Messages from this size on are parsed in `large_pool`."""
LARGE_THREADS = 2
SPOOL_AFTER = 2.0
"""Seconds a session waits for its history row to be committed before it spools the recording
and answers. The hot path's commit takes milliseconds, so it never touches the spool; spooling
every recording instead would add an fsync per batch to every reply for no gain while PostgreSQL
is well. Two seconds is far above a commit under load, so the file is written only when
PostgreSQL is really away (or stalled), and a sender waits at most this long for it."""


__all__ = ["EdgeContext", "Recording"]


class EdgeContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions: sessionmaker[Session] = session_factory(
            settings.database_url, pool_size=DB_THREADS
        )
        self.resolver: dns.resolver.Resolver = make_resolver(settings.dns_nameservers)
        self.spf = SpfChecker(self.resolver)
        self.auth = AuthChecker(self.resolver)
        self.db_pool = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="edge-db")
        self.cpu_pool = ThreadPoolExecutor(
            max(2, os.cpu_count() or 2), thread_name_prefix="edge-parse"
        )
        # Large messages take a second or more each to parse and render; in a pool of their own
        # they never queue small messages behind them (bench/inbound.py: 1.7 s -> well under 1 s).
        self.large_pool = ThreadPoolExecutor(LARGE_THREADS, thread_name_prefix="edge-parse-large")
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
        )
        self.poster = TargetPoster(self.http, timeout=settings.target_timeout)
        self._tasks: set[asyncio.Task[object]] = set()
        self.routes = RouteCache(settings, self.in_db)
        self.history_store = HistoryStore(settings)
        self.spool = Spool(spool_path(settings.smtp_data_dir), self.keep)
        self.shipping = ShippingRequests(settings, self.keep)
        self.history = HistoryWriter(
            self.history_store.write,
            self.keep,
            self.routes.counted,
            finished=self.spool.done,
            logged=self.shipping.ask,
        )

    def start(self) -> None:
        """Start what runs for the process's lifetime: listening for route changes; and hand
        the writer what a previous run left in the spool."""
        self.keep(asyncio.create_task(self.routes.listen()))
        self.keep(asyncio.create_task(self._replay()))

    async def _replay(self) -> None:
        try:
            recordings = await self.spool.replay()
        except OSError:
            log.exception("could not read the history spool %s", self.spool.path)
            return
        for recording in recordings:
            self.history.submit(recording, again=True).add_done_callback(_log_refused(recording))

    async def close(self) -> None:
        """Spool what the writer still holds, cancel deliveries still running (their sessions
        are gone) and release the pools."""
        try:
            await self.spool.append(self.history.uncommitted())
        except OSError:
            log.exception("could not spool %d uncommitted recordings", len(self.history.uncommitted()))
        await self.spool.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.close()
        await self.history_store.close()
        await self.shipping.close()
        self.db_pool.shutdown(wait=False, cancel_futures=True)
        self.cpu_pool.shutdown(wait=False, cancel_futures=True)
        self.large_pool.shutdown(wait=False, cancel_futures=True)
        self.auth.close()

    def keep(self, task: asyncio.Task[T]) -> asyncio.Task[T]:
        """Hold a reference to a task that must finish even if its session goes away."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def in_db(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run `fn(session, *args, **kwargs)` in a DB thread with a session of its own."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.db_pool, functools.partial(self._with_session, fn, *args, **kwargs)
        )

    def _with_session(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        with self.sessions() as session:
            return fn(session, *args, **kwargs)

    async def in_cpu(
        self, size: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run CPU work on a message of `size` bytes: a small one right here (well under a
        millisecond, less than the hop to a thread costs), others in the pool for their size."""
        if size < INLINE_MESSAGE_BYTES:
            return fn(*args, **kwargs)
        pool = self.large_pool if size >= LARGE_MESSAGE_BYTES else self.cpu_pool
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))

    async def check_auth(self, raw: bytes, spf: SpfResult) -> AuthResults:
        """DKIM and DMARC for one message (smtp_edge/auth_results.py): a small one on the event
        loop when its records are cached (like parsing), else in a thread; large messages in the
        large-message pool, so few big bodies are hashed at once."""
        pool = self.large_pool if len(raw) >= LARGE_MESSAGE_BYTES else None
        return await self.auth.check(raw, spf, pool=pool, inline=len(raw) < INLINE_MESSAGE_BYTES)

    async def record(self, recording: Recording) -> None:
        """Write the history row (and count the message), or make sure it will be: never
        raises, and returns once the recording is committed or spooled (or refused for good)."""
        committed = self.history.submit(recording)
        try:
            await asyncio.wait_for(asyncio.shield(committed), SPOOL_AFTER)
            return
        except TimeoutError:
            pass
        except Exception:
            _log_refused(recording)(committed)
            return
        if committed.done():  # committed just now; nothing owed
            return
        try:
            await self.spool.append([recording])
        except OSError:
            log.exception(
                "history write for %s is slow and the spool failed; answered without either",
                recording.delivery.envelope_to,
            )
        else:
            log.warning(
                "history write for %s is slow; spooled and answered", recording.delivery.envelope_to
            )


def _log_refused(recording: Recording) -> Callable[[asyncio.Future[None]], None]:
    def log_it(future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is None:
            return
        delivery = recording.delivery
        log.error(
            "could not record delivery to %s (status %s, reply %r)",
            delivery.envelope_to,
            delivery.status,
            delivery.smtp_reply,
            exc_info=future.exception(),
        )

    return log_it
