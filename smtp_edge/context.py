"""What every SMTP session of the process shares: settings, HTTP and DB pools, worker threads.

Blocking work never runs on the event loop: database calls go to a small thread pool sized like
the SQLAlchemy connection pool, parsing and rendering messages to another. A history write that
hangs (database outage) is waited for only so long; the reply does not depend on it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import aiohttp
import dns.resolver
from sqlalchemy.orm import Session, sessionmaker

from provider.db import session_factory
from provider.dns import make_resolver
from provider.services import applog
from provider.services.history import Delivery, record_delivery
from provider.services.usage import count_inbound
from provider.settings import Settings

from .poster import TargetPoster

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

DB_THREADS = 8
RECORD_WAIT = 10.0
"""Seconds a session waits for its history row before answering anyway."""


@dataclass(frozen=True)
class Recording:
    delivery: Delivery
    counted: bool  # the message counts towards the monthly quota
    log_line: str


class EdgeContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions: sessionmaker[Session] = session_factory(
            settings.database_url, pool_size=DB_THREADS
        )
        self.resolver: dns.resolver.Resolver = make_resolver(settings.dns_nameservers)
        self.db_pool = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="edge-db")
        self.cpu_pool = ThreadPoolExecutor(
            max(2, os.cpu_count() or 2), thread_name_prefix="edge-parse"
        )
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
        )
        self.poster = TargetPoster(self.http, timeout=settings.target_timeout)
        self._tasks: set[asyncio.Task[object]] = set()

    async def close(self) -> None:
        """Cancel deliveries still running (their sessions are gone) and release the pools."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.close()
        self.db_pool.shutdown(wait=False, cancel_futures=True)
        self.cpu_pool.shutdown(wait=False, cancel_futures=True)

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

    async def in_cpu(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.cpu_pool, functools.partial(fn, *args, **kwargs))

    async def record(self, recording: Recording) -> None:
        """Write the history row (and count the message); never raises, waits a bounded time."""
        future = self.in_db(self._write, recording)
        try:
            await asyncio.wait_for(
                asyncio.shield(self.keep(asyncio.ensure_future(future))), RECORD_WAIT
            )
        except TimeoutError:
            log.error(
                "history write for %s is slow; answered without waiting",
                recording.delivery.envelope_to,
            )
        except Exception:
            log.exception(
                "could not record delivery to %s (status %s, reply %r)",
                recording.delivery.envelope_to,
                recording.delivery.status,
                recording.delivery.smtp_reply,
            )

    def _write(self, session: Session, recording: Recording) -> None:
        delivery = recording.delivery
        record_delivery(session, delivery)
        if recording.counted:
            count_inbound(session, delivery.resource_id, delivery.received_at)
        try:
            with session.begin_nested():
                applog.record(session, self.settings, delivery.resource_id, recording.log_line)
        except Exception:
            # The app's log line is a courtesy; the history row and the counter are not.
            log.exception("could not add the app log line for %s", delivery.resource_id)
        session.commit()
