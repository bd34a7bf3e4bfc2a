"""Routes cached in the edge, dropped the moment PostgreSQL says they changed.

Without a cache every RCPT cost an indexed query, a pool checkout and a thread hop: a fifth of
the edge's CPU in bench/inbound.py, for an answer that changes a few times in an address's life.

Two kinds of entries: a forward address's route, keyed by its local id, and a custom domain's
(`routing.DomainRoute`), keyed by `@<domain>`, whose local-part pattern is applied to each
recipient from the cached entry.

Invalidation: triggers on `addresses` and `resources` (migration 0002) and on `domains` (0013)
NOTIFY `CHANNEL` at the commit of any change to a row a route is made of. `listen()` holds a
connection of its own that LISTENs, and drops the entries a notification names. Nothing is
cached unless that connection is up: entries are cleared whenever listening starts or stops, so
a notification missed while it was down cannot leave a stale route behind. A lookup that raced
a notification (read before the change, finished after the NOTIFY arrived) is not stored
(`generation`).

Usage: the month's inbound count in a route (for the quota at RCPT) is kept current by this
edge's own deliveries (`counted`) and re-read at least every `REFRESH_AFTER` seconds, so mail
through other edge processes can overshoot a quota by at most that long's worth. That refresh
also bounds how long an entry can outlive a change whose notification was lost in a network
partition that kept the listening connection looking alive.

Refusals are not cached, so a new address receives mail at once: an unknown address or an
unverified domain asks the database every time. The one exception is a domain nobody claims (a
relay attempt, `_unserved`): remembered like a route, and forgotten at any domain notice, since
the trigger of migration 0013 fires for new claims too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

import psycopg

from provider.db import CONNECT_TIMEOUT, libpq_url
from provider.errors import RelayDenied
from provider.models.base import utcnow
from provider.services.routing import (
    DomainRoute,
    Route,
    custom_domain,
    custom_domain_of,
    domain_local_part,
    forward_local_id,
    route_recipient,
)
from provider.services.usage import month_start
from provider.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "cloudmailin_routes"
APPLICATION_NAME = "cloudmailin-edge-routes"
"""How the listening connection shows in pg_stat_activity."""
REFRESH_AFTER = 30.0
"""Seconds an entry is served before it is read again (usage from other edges, lost notices)."""
MAX_ENTRIES = 50_000
MAX_UNSERVED = 10_000
"""Domains remembered as claimed by nobody (relay attempts), apart so they never evict routes."""
RETRY_AFTER = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Seconds between attempts to (re)connect the listening connection; the last one repeats."""

RunInDb = Callable[..., Awaitable[Any]]


@dataclasses.dataclass
class _Entry:
    route: Route
    read_at: float
    period: date
    tags: tuple[str, ...]
    """The notices that drop it: `address:<local_id>`, `resource:<id>`, `domain:<row name>`."""
    local_part_regex: str | None = None
    """A custom domain's pattern (None: every local part, or a forward address's entry)."""


class RouteCache:
    def __init__(
        self, settings: Settings, in_db: RunInDb, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._in_db = in_db
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._by_tag: dict[str, set[str]] = {}
        self._unserved: dict[str, float] = {}
        """Domains nobody claims, by when that was read: a relay attempt costs no query."""
        self.listening = False
        self.generation = 0
        """Bumped by every invalidation; tests wait on it to know a notice has arrived."""

    async def route(self, recipient: str) -> Route:
        """The recipient's route, or the routing error refusing it (as `route_recipient`)."""
        local_id = forward_local_id(self._settings, recipient)
        if local_id is None and (custom := custom_domain_of(self._settings, recipient)) is not None:
            return await self._domain_route(*custom)
        now = utcnow()
        if local_id is not None and (entry := self._fresh(local_id, now)) is not None:
            return entry.route
        generation = self.generation
        route = await self._in_db(route_recipient, self._settings, recipient, now=now)
        if local_id is not None and self.listening and generation == self.generation:
            tags = (f"address:{local_id}", f"resource:{route.resource_id}")
            self._store(local_id, _Entry(route, self._clock(), month_start(now), tags))
        return route

    async def _domain_route(self, local: str, domain: str) -> Route:
        key = "@" + domain
        now = utcnow()
        entry = self._fresh(key, now)
        if entry is None:
            unserved_at = self._unserved.get(domain)
            if unserved_at is not None and self._clock() - unserved_at < REFRESH_AFTER:
                raise RelayDenied()
            generation = self.generation
            served: DomainRoute | None = await self._in_db(custom_domain, self._settings, domain, now=now)
            cacheable = self.listening and generation == self.generation
            if served is None:
                if cacheable:
                    self._remember_unserved(domain)
                raise RelayDenied()
            route = served.route
            tags = (f"address:{served.local_id}", f"resource:{route.resource_id}", f"domain:{served.name}")
            entry = _Entry(route, self._clock(), month_start(now), tags, served.local_part_regex)
            if cacheable:
                self._store(key, entry)
        return domain_local_part(entry.route, entry.local_part_regex, local)

    def _remember_unserved(self, domain: str) -> None:
        self._unserved.pop(domain, None)
        if len(self._unserved) >= MAX_UNSERVED:
            del self._unserved[next(iter(self._unserved))]
        self._unserved[domain] = self._clock()

    def _fresh(self, key: str, now: datetime) -> _Entry | None:
        entry = self._entries.get(key)
        if (
            entry is not None
            and self._clock() - entry.read_at < REFRESH_AFTER
            and entry.period == month_start(now)
        ):
            return entry
        return None

    def counted(self, resource_id: str, messages: int) -> None:
        """This edge's delivered messages, added to the cached month's count of their resource."""
        for key in self._by_tag.get(f"resource:{resource_id}", ()):
            entry = self._entries[key]
            used = entry.route.inbound_this_month + messages
            entry.route = dataclasses.replace(entry.route, inbound_this_month=used)

    def invalidate(self, notice: str) -> None:
        """Drop what a notification names: `address:<local_id>`, `resource:<id>` or `domain:<name>`."""
        self.generation += 1
        kind, _, key = notice.partition(":")
        if kind == "address":
            key = key.lower()
            self._drop(key)
        elif kind == "domain":
            self._drop("@" + key)  # a new row of its own name now outranks the wildcard it matched
            self._unserved.clear()  # any claim may serve one of them (a wildcard, many); claims are rare
        elif kind != "resource":
            log.warning("route notice %r not understood; dropping every cached route", notice)
            self._clear()
            return
        for cached in list(self._by_tag.get(f"{kind}:{key}", ())):
            self._drop(cached)

    async def listen(self) -> None:
        """LISTEN for route changes until cancelled, reconnecting after failures."""
        failures = 0
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(
                    libpq_url(self._settings.database_url),
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT,
                    application_name=APPLICATION_NAME,
                )
            except psycopg.Error as exc:
                log.warning("route cache off: cannot connect to listen for changes: %s", exc)
            else:
                try:
                    async with connection:
                        await connection.execute(f"LISTEN {CHANNEL}")
                        self._set_listening(True)
                        failures = 0
                        async for notice in connection.notifies():
                            self.invalidate(notice.payload)
                except psycopg.Error as exc:
                    log.warning("route cache off: listening connection lost: %s", exc)
                finally:
                    self._set_listening(False)
            await asyncio.sleep(RETRY_AFTER[min(failures, len(RETRY_AFTER) - 1)])
            failures += 1

    def _set_listening(self, listening: bool) -> None:
        self._clear()
        self.listening = listening

    def _store(self, key: str, entry: _Entry) -> None:
        self._drop(key)
        if len(self._entries) >= MAX_ENTRIES:
            self._drop(next(iter(self._entries)))  # the oldest read
        self._entries[key] = entry
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    def _clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_tag.clear()
        self._unserved.clear()
