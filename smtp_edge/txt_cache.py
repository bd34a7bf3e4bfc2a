"""TXT look-ups for DKIM keys and DMARC policies, cached for as long as their DNS answers live.

Every signed message from a sender needs the same key record and every message from a domain
the same `_dmarc` record, so the edge keeps the answers (not the verdicts, which depend on each
message) exactly as long as a caching resolver would: until the answer's TTL runs out, at most
`TTL_CAP`; "nothing there" (NXDOMAIN, no TXT) for `NEGATIVE_TTL`. A temporary failure (timeout,
SERVFAIL) is never kept, so the next message asks again. One cache serves the worker threads
that verify messages; a lock guards it.

Each check has a deadline (`Deadline`): a look-up gets only the DNS time the check has left,
so a slow zone costs a session at most the check's time limit, as with SPF.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import dns.resolver

from provider.dns import DnsNoSuchDomain, DnsPermanentError, DnsTemporaryError, resolve

TTL_CAP = 300.0
"""Seconds an answer is kept at most, whatever its TTL."""

NEGATIVE_TTL = 60.0
"""Seconds "nothing published" is kept."""

CACHE_ENTRIES = 10_000


class TxtTemporaryError(Exception):
    """The records are not known now (timeout, SERVFAIL, the check's time is up)."""


class NotCached(Exception):
    """A cache-only look-up (a check tried on the event loop) needs DNS: run it in a thread."""


@dataclass
class Deadline:
    """The moment (time.monotonic()) one check's DNS time is up."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()


class TxtCache:
    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        *,
        entries: int = CACHE_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resolver = resolver
        self._entries = entries
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[list[bytes], float]] = OrderedDict()

    def lookup(self, name: str, deadline: Deadline, *, cached_only: bool = False) -> list[bytes]:
        """The TXT records at `name` (each one's strings joined), [] when none are published.

        Raises TxtTemporaryError when DNS does not answer in time or fails temporarily, and
        NotCached when `cached_only` and the answer is not in the cache.
        """
        key = name.rstrip(".").lower()
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                if cached[1] > now:
                    self._cache.move_to_end(key)
                    return cached[0]
                del self._cache[key]
        if cached_only:
            raise NotCached(key)
        records, expires = self._ask(key, deadline)
        until = min(expires, self._clock() + TTL_CAP)
        with self._lock:
            self._cache[key] = (records, until)
            if len(self._cache) > self._entries:
                self._cache.popitem(last=False)
        return records

    def _ask(self, name: str, deadline: Deadline) -> tuple[list[bytes], float]:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise TxtTemporaryError(f"{name}: time limit for the check reached")
        try:
            answer = resolve(
                self.resolver, name, "TXT", lifetime=min(remaining, self.resolver.lifetime)
            )
        except (DnsNoSuchDomain, DnsPermanentError):
            return [], self._clock() + NEGATIVE_TTL
        except DnsTemporaryError as exc:
            raise TxtTemporaryError(str(exc)) from None
        if answer is None or answer.rrset is None:
            return [], self._clock() + NEGATIVE_TTL
        ttl = max(0.0, answer.expiration - time.time())  # dnspython's expiry is wall-clock time
        return [b"".join(r.strings) for r in answer.rrset], self._clock() + ttl
