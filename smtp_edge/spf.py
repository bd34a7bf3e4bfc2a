"""SPF (RFC 7208) verdicts for the envelope, evaluated by pyspf through our own resolver.

pyspf is the reference implementation (it passes the RFC 7208 test suite), but it sends every
look-up through one module-level function, ``spf.DNSLookup``, which by default uses dnspython's
process-wide resolver. We replace that function once, with one that takes the resolver and the
deadline of the check in progress from a :class:`contextvars.ContextVar`. :func:`check_spf` sets
it around its own evaluation and every thread has its own context, so concurrent checks with
different resolvers cannot see each other's, and code that calls pyspf outside :func:`check_spf`
still gets pyspf's own behaviour.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dns.resolver
import spf

from provider.dns import DnsNoSuchDomain, DnsPermanentError, DnsTemporaryError, resolve
from provider.inbound.envelope import SPF_RESULTS, SpfResult

log = logging.getLogger(__name__)

DEFAULT_TIME_LIMIT = 5.0
"""Seconds of DNS time one whole check may use (RFC 7208 4.6.4 allows 20; SMTP peers wait)."""

MAX_CONCURRENT_CHECKS = 32
"""Checks that wait on DNS at once; more queue. A pool of their own keeps slow DNS from starving
other users of the event loop's default executor."""




RESULT_TTL_CAP = 300.0
"""Seconds a cached verdict lives at most, however long its DNS answers may be cached."""

NEGATIVE_TTL = 60.0
"""Seconds a "nothing there" answer (NXDOMAIN, no records) counts as valid for the cache."""

CACHE_ENTRIES = 10_000
"""Verdicts kept by one `SpfChecker`; the least recently used go first."""


@dataclass
class _Lookup:
    resolver: dns.resolver.Resolver
    deadline: float
    # The earliest moment (time.time()) one of the answers used so far stops being valid.
    valid_until: float = float("inf")

    def answered(self, answer: dns.resolver.Answer | None) -> None:
        expires = answer.expiration if answer is not None else time.time() + NEGATIVE_TTL
        self.valid_until = min(self.valid_until, expires)


_current: contextvars.ContextVar[_Lookup | None] = contextvars.ContextVar(
    "smtp_edge_spf_lookup", default=None
)

_LookupFunction = Callable[..., list[tuple[tuple[str, str], Any]]]
_pyspf_lookup: _LookupFunction = spf.DNSLookup


def _lookup(name: str, qtype: str, strict: object = True, timeout: float = 20.0) -> list[Any]:
    """Answer pyspf's question in the shape its own dnspython driver returns.

    Nothing found (NXDOMAIN or no records) is ``[]``; timeouts and server failures raise
    ``spf.TempError``, which pyspf turns into the ``temperror`` result.
    """
    current = _current.get()
    if current is None:
        return _pyspf_lookup(name, qtype, strict, timeout)
    remaining = current.deadline - time.monotonic()
    if remaining <= 0:
        raise spf.TempError("DNS: time limit for the SPF check reached")
    lifetime = min(remaining, timeout, current.resolver.lifetime)
    try:
        answer = resolve(current.resolver, name, qtype, lifetime=lifetime)
    except DnsNoSuchDomain:
        current.answered(None)
        return []
    except DnsPermanentError:
        return []  # a malformed name cannot have records; pyspf counts it as a void look-up
    except DnsTemporaryError as exc:
        raise spf.TempError(f"DNS {exc}") from None
    current.answered(answer)
    if answer is None or answer.rrset is None:
        return []
    key = (name, qtype)
    if qtype in ("A", "AAAA"):
        return [(key, r.address) for r in answer.rrset]
    if qtype == "MX":
        return [(key, (r.preference, r.exchange.to_text(True))) for r in answer.rrset]
    if qtype == "PTR":
        return [(key, r.target.to_text(True)) for r in answer.rrset]
    if qtype in ("TXT", "SPF"):
        return [(key, r.strings) for r in answer.rrset]
    return []


spf.DNSLookup = _lookup


def spf_domain(mail_from: str, helo: str) -> str:
    """The identity SPF checks: the MAIL FROM domain, or the HELO name for the null sender."""
    if mail_from:
        return mail_from.rpartition("@")[2]
    return helo


def _multi_label(domain: str) -> bool:
    labels = domain.removesuffix(".").split(".")
    return (
        len(labels) >= 2
        and all(0 < len(label) <= 63 for label in labels)
        and not domain.startswith("[")
    )


def check_spf(
    resolver: dns.resolver.Resolver,
    ip: str,
    mail_from: str,
    helo: str,
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> SpfResult:
    """Evaluate SPF for a client at ``ip`` sending MAIL FROM ``mail_from`` after HELO ``helo``.

    ``mail_from`` is the bare address, ``""`` for the null sender ``<>`` (then the HELO identity
    is checked, RFC 7208 2.3). Blocks for at most about ``time_limit`` seconds of DNS. Never
    raises: anything that prevents an evaluation becomes ``temperror`` or ``permerror``.
    """
    return _evaluate(resolver, ip, mail_from, helo, time_limit)[0]


def _evaluate(
    resolver: dns.resolver.Resolver, ip: str, mail_from: str, helo: str, time_limit: float
) -> tuple[SpfResult, float]:
    """The verdict and until when (time.time()) it holds: the earliest expiry of the DNS
    answers it was computed from; 0 for a temperror, which says nothing about later."""
    domain = spf_domain(mail_from, helo)
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        log.warning("SPF: client address %r is not an IP address", ip)
        return SpfResult("permerror", domain), float("inf")
    if not _multi_label(domain):
        return SpfResult("none", domain), float("inf")  # RFC 7208 4.3: nothing to look up
    lookup = _Lookup(resolver, time.monotonic() + time_limit)
    token = _current.set(lookup)
    try:
        query = spf.query(
            i=str(address), s=mail_from, h=helo, querytime=time_limit, timeout=time_limit
        )
        if mail_from:
            # pyspf splits at the first "@", RFC 5321 at the last (a quoted local part may hold
            # one); these attributes are the RFC 7208 macro variables l, o and d.
            local = mail_from.rpartition("@")[0] if "@" in mail_from else ""
            query.l, query.o, query.d = local or "postmaster", domain, domain
        result = str(query.check()[0])
    except spf.TempError:
        result = "temperror"
    except spf.PermError:
        result = "permerror"
    except Exception:
        log.exception("SPF: unexpected error checking %s for %s", domain, ip)
        result = "temperror"
    finally:
        _current.reset(token)
    if result not in SPF_RESULTS:
        log.warning("SPF: unexpected result %r for %s", result, domain)
        result = "temperror"
    return SpfResult(result, domain), 0.0 if result == "temperror" else lookup.valid_until


_executor = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_CHECKS, thread_name_prefix="spf")


class SpfChecker:
    """The edge's SPF checks, with verdicts cached per (client IP, MAIL FROM, HELO).

    A sender's stream of messages then costs one evaluation: pyspf's look-ups and a thread hop
    per message were a tenth of the edge's time in bench/inbound.py. A verdict is kept until the
    earliest expiry of the DNS answers it was computed from (no longer than RESULT_TTL_CAP), so
    it is exactly as fresh as a caching resolver's answers would make it; a temperror is never
    kept. The cache belongs to one event loop and is only touched from it.
    """

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        *,
        entries: int = CACHE_ENTRIES,
        time_limit: float = DEFAULT_TIME_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resolver = resolver
        self._entries = entries
        self._time_limit = time_limit
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str, str], tuple[SpfResult, float]] = OrderedDict()

    async def check(self, ip: str, mail_from: str, helo: str) -> SpfResult:
        key = (ip, mail_from, helo)
        cached = self._cache.get(key)
        now = self._clock()
        if cached is not None:
            if cached[1] > now:
                self._cache.move_to_end(key)
                return cached[0]
            del self._cache[key]
        loop = asyncio.get_running_loop()
        result, valid_until = await loop.run_in_executor(
            _executor,
            functools.partial(_evaluate, self.resolver, ip, mail_from, helo, self._time_limit),
        )
        until = min(valid_until, self._clock() + RESULT_TTL_CAP)
        if until > self._clock():
            self._cache[key] = (result, until)
            if len(self._cache) > self._entries:
                self._cache.popitem(last=False)
        return result
