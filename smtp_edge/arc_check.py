"""ARC (RFC 8617): the chain of custody that forwarders and lists add, verified by dkimpy.

Only a message with an `ARC-Seal` field is verified (`has_arc`); for any other the result is
`none` with no instances, at no cost. dkimpy's `ARC.verify` checks every instance from the
newest down: the newest ARC-Message-Signature must verify, each ARC-Seal must verify, the first
seal must say `cv=none` and every later one `cv=pass`. Keys come from the same TXT cache, under
the same deadline, as DKIM's (`dkim_check.KeyProbe`), and the message split is the same.

- `none` (`instances` 0): no ARC-Seal field, or none with an instance number;
- `pass`: every instance verifies;
- `fail`: a seal or the newest message signature does not verify (the message altered, a key
  missing or revoked, DNS failing), a set incomplete or malformed, a seal saying `cv=fail`, or
  more than 50 instances.

`instances` is the highest `i=` of the chain. The edge only reports: the message is POSTed
whatever the result.
"""

from __future__ import annotations

import logging

import dkim

from provider.inbound.envelope import ArcResult

from .dkim_check import HeaderFields, KeyProbe, ProbedKeys
from .txt_cache import Deadline, NotCached, TxtCache

log = logging.getLogger(__name__)

NO_CHAIN = ArcResult("none", 0)
MAX_INSTANCES = 50
"""RFC 8617 section 4.2.1: i= is 1 to 50; a longer chain fails unverified."""

_dkimpy_log = logging.getLogger(f"{__name__}.dkimpy")
_dkimpy_log.setLevel(logging.CRITICAL)  # dkimpy logs a broken chain at ERROR: the sender's matter
_dkimpy_log.propagate = False


class _Chain(ProbedKeys, dkim.ARC):
    pass


def has_arc(fields: HeaderFields) -> bool:
    return any(name == b"arc-seal" for name, _ in fields)


def verify_chain(
    raw: bytes, fields: HeaderFields, txt: TxtCache, deadline: Deadline, *, cached_only: bool = False
) -> ArcResult:
    """The chain's result. With `cached_only`, raises NotCached when a key is not cached."""
    if not has_arc(fields):
        return NO_CHAIN
    try:
        chain = _Chain(raw, logger=_dkimpy_log)
        instances, _ = chain.sorted_arc_headers()
        if not instances:
            return NO_CHAIN
        if instances > MAX_INSTANCES:
            return ArcResult("fail", instances)
        cv, _, _ = chain.verify(dnsfunc=KeyProbe(txt, deadline, cached_only))
    except NotCached:
        raise
    except (dkim.DKIMException, IndexError, ValueError):
        # A header block dkimpy cannot read, or a set it cannot match up (an IndexError for
        # an ARC-Message-Signature whose i= it does not find): the chain cannot be verified.
        return ArcResult("fail", 0)
    return ArcResult("pass" if cv == dkim.CV_Pass else "fail", instances)
