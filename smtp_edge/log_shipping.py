"""Asking for app log shipping after a history batch commits, off the reply path, bounded.

The lines themselves are committed with their history rows; asking a worker to ship them is a
Redis round trip (`log_shipping_queue.request_shipping_async`). Awaited inside the history writer, a stalled
Redis (SIGSTOP, a failover) held every later batch, so replies waited for a Redis that had
nothing to do with them, and sessions answered on the record timeout before their rows were
committed. Here the writer only hands over resource ids; one task at a time asks for all ids
gathered so far, every Redis call has a socket timeout, and the whole request a deadline. A
request that fails is logged and not repeated: lines nobody asked for are found by the sweep
(workers/jobs/sweep.py, `LOG_LINE_STALE_AFTER`), so a lost request delays shipping and loses
nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from provider import log_shipping_queue
from provider.settings import Settings

log = logging.getLogger(__name__)

REDIS_TIMEOUT = 2.0
"""Seconds any one Redis call of the edge (connect, send, read) may take."""
REQUEST_DEADLINE = 2 * REDIS_TIMEOUT + 1.0
"""Seconds one shipping request may take in all (the ask, then enqueueing the dispatch job)."""


class ShippingRequests:
    def __init__(self, settings: Settings, keep: Callable[[asyncio.Task[None]], object]) -> None:
        self._settings = settings
        self._keep = keep
        self._wanted: set[str] = set()
        self._running = False
        self._redis: AsyncRedis | None = None
        self._dispatcher: Redis | None = None

    def ask(self, resource_ids: Iterable[str]) -> None:
        """Note the resources whose lines were just committed; returns at once."""
        self._wanted.update(resource_ids)
        if self._wanted and not self._running:
            self._running = True
            self._keep(asyncio.create_task(self._send()))

    async def _send(self) -> None:
        try:
            while self._wanted:
                ids, self._wanted = self._wanted, set()
                await self._request(ids)
        finally:
            self._running = False

    async def _request(self, ids: set[str]) -> None:
        try:
            async with asyncio.timeout(REQUEST_DEADLINE):
                await log_shipping_queue.request_shipping_async(
                    self._async_client(), self._settings.redis_url, ids, self._sync_client()
                )
        except TimeoutError:
            log.warning("asking for app log shipping of %d resources timed out", len(ids))

    def _async_client(self) -> AsyncRedis:
        if self._redis is None:
            self._redis = AsyncRedis.from_url(
                self._settings.redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
        return self._redis

    def _sync_client(self) -> Redis:
        if self._dispatcher is None:
            self._dispatcher = Redis.from_url(
                self._settings.redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
        return self._dispatcher

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._dispatcher is not None:
            self._dispatcher.close()
            self._dispatcher = None
