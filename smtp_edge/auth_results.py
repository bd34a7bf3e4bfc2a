"""DKIM, DMARC and ARC results for each inbound message, for `envelope.dkim`, `envelope.dmarc`,
`envelope.arc` and the history (DKIM and DMARC; ARC only in the payload).

dkimpy is synchronous and waits on DNS, so a check that needs DNS runs in a thread (a small
message whose records are all cached is checked on the event loop, as it is parsed there,
see `AuthChecker.check`): in a pool of its own, sized
like SPF's (threads waiting on DNS must not hold the parsing threads, which are sized to the
cores), or, for messages from `LARGE_MESSAGE_BYTES` on, in the edge's pool for large messages,
which bounds how many 25 MB bodies are canonicalised at once. Key and policy records are cached
by TTL (`TxtCache`); one check uses at most `DEFAULT_TIME_LIMIT` seconds of DNS, after which the
remaining look-ups count as `temperror`. It never raises: a bug in a check reports `temperror`
(ARC: `fail`) and is logged, and the message is delivered all the same.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import dns.resolver

from provider.inbound.envelope import ArcResult, DkimResult, DmarcResult, SpfResult

from .arc_check import NO_CHAIN, verify_chain
from .dkim_check import read_header, verify_signatures
from .dmarc_check import check_dmarc
from .txt_cache import Deadline, NotCached, TxtCache

log = logging.getLogger(__name__)

DEFAULT_TIME_LIMIT = 5.0
"""Seconds of DNS time one message's DKIM and DMARC checks may use together (as SPF's)."""

MAX_CONCURRENT_CHECKS = 32


@dataclass(frozen=True)
class AuthResults:
    dkim: tuple[DkimResult, ...]
    dmarc: DmarcResult
    arc: ArcResult = NO_CHAIN

    @property
    def dkim_summary(self) -> str:
        """One word for the history: `none` unsigned, `pass` when any signature passes, else
        the topmost signature's result."""
        if not self.dkim:
            return "none"
        if any(d.result == "pass" for d in self.dkim):
            return "pass"
        return self.dkim[0].result


def check_auth(
    raw: bytes,
    spf: SpfResult,
    txt: TxtCache,
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    cached_only: bool = False,
) -> AuthResults:
    """DKIM, DMARC, then ARC for a message with an ARC-Seal (blocking: DNS look-ups and
    hashing the body).

    With `cached_only` it never waits on DNS: it raises NotCached when a record is not cached.
    """
    deadline = Deadline.after(time_limit)
    try:
        fields, lean = read_header(raw)
        dkim_results = verify_signatures(
            raw, fields, txt, deadline, cached_only=cached_only, lean=lean
        )
        dmarc_result = check_dmarc(fields, spf, dkim_results, txt, deadline, cached_only=cached_only)
    except NotCached:
        raise
    except Exception:
        log.exception("DKIM/DMARC check crashed; reporting temperror")
        return AuthResults((), DmarcResult("temperror", None))
    try:
        arc_result = verify_chain(raw, fields, txt, deadline, cached_only=cached_only)
    except NotCached:
        raise
    except Exception:
        log.exception("ARC check crashed; reporting fail")
        arc_result = ArcResult("fail", 0)
    return AuthResults(tuple(dkim_results), dmarc_result, arc_result)


class AuthChecker:
    """The edge's DKIM and DMARC checks: one shared record cache, one pool of threads."""

    def __init__(
        self, resolver: dns.resolver.Resolver, *, time_limit: float = DEFAULT_TIME_LIMIT
    ) -> None:
        self.txt = TxtCache(resolver)
        self.time_limit = time_limit
        self.pool = ThreadPoolExecutor(MAX_CONCURRENT_CHECKS, thread_name_prefix="edge-auth")

    async def check(
        self, raw: bytes, spf: SpfResult, *, pool: Executor | None = None, inline: bool = False
    ) -> AuthResults:
        """With `inline` (a small message) the check first runs right here, from the cache
        alone: a sender's stream of messages then costs no thread hop, which was a large part of
        a signed message's cost in bench/inbound.py. A record not cached sends it to a thread."""
        if inline:
            try:
                return check_auth(raw, spf, self.txt, cached_only=True)
            except NotCached:
                pass
        loop = asyncio.get_running_loop()
        call = functools.partial(check_auth, raw, spf, self.txt, time_limit=self.time_limit)
        return await loop.run_in_executor(pool or self.pool, call)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
