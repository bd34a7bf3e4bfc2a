"""DKIM (RFC 6376): every signature of a message verified by dkimpy, keys read through our cache.

dkimpy answers one signature at a time with True or False and folds several distinct outcomes
into False (no key published, a revoked key, DNS timing out, a signature that does not match).
The payload names them as RFC 8601 section 2.7.1 does, so the key look-up goes through
`KeyProbe`, which remembers what DNS said, and the two phases of `DKIM.verify` (reading the
signature's tags, then checking it against the key) are called one by one to tell a malformed
signature from a broken one:

| what happened | result |
|---|---|
| the signature verifies | `pass` |
| body hash or signature does not match (message altered, wrong key) | `fail` |
| no key at `<s>._domainkey.<d>`, an empty `p=` (revoked), a key that cannot be used | `permerror` |
| DNS timed out, failed, or the check's time ran out | `temperror` |
| the signature's tags are malformed, expired (`x=`), of an unknown algorithm | `neutral` |

At most `MAX_SIGNATURES` signatures are verified (the topmost); RFC 6376 section 6.1 lets a
verifier limit them, and each costs a key look-up and a pass over the body.

Keys are parsed once per distinct record (`_Message.verify_sig` takes them from `KeyProbe`,
which keeps them by record) instead of once per message. The common signature (rsa-sha256 of a
CRLF message) is verified by smtp_edge/dkim_lean.py, which gives dkimpy's answer at a fraction
of its cost; dkimpy, with smtp_edge/dkimpy_fast.py's faster internals, verifies the rest.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import dkim

from provider.inbound.envelope import DkimResult

from . import dkim_lean, dkimpy_fast
from .txt_cache import Deadline, NotCached, TxtCache, TxtTemporaryError

log = logging.getLogger(__name__)

MAX_SIGNATURES = 10

# dkimpy logs every missing or revoked key at ERROR: for a receiver that is the sender's
# problem, reported in the payload, not an error of this process.
_dkimpy_log = logging.getLogger(f"{__name__}.dkimpy")
_dkimpy_log.setLevel(logging.CRITICAL)
_dkimpy_log.propagate = False

_HEADER_END = re.compile(rb"\r?\n\r?\n")

HeaderFields = list[tuple[bytes, bytes]]


def header_fields(raw: bytes) -> HeaderFields:
    """The message's header fields as (lower-case name, unfolded value), top first.

    Only the header block is read (never a copy of a 25 MB body); lines that are not fields
    are skipped, as a lenient reader does.
    """
    end = _HEADER_END.search(raw)
    block = raw[: end.start()] if end else raw
    fields: HeaderFields = []
    for line in block.split(b"\n"):
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + b" " + line.strip())
            continue
        name, colon, value = line.partition(b":")
        if colon and name.strip():
            fields.append((name.strip().lower(), value.strip()))
    return fields


_PublicKey = tuple[Any, int, bytes, bool]
"""What dkimpy keeps of a key record: (key, bits, k= type, s=tlsrpt)."""


@functools.lru_cache(maxsize=1024)
def _parsed_key(record: bytes) -> _PublicKey | None:
    try:
        return dkim.evaluate_pk("key", record)
    except Exception:
        return None  # a revoked key (an empty p=), a malformed record, an unknown key type


class KeyProbe:
    """The key of a signature from the TXT cache, and a note of what DNS said."""

    def __init__(self, txt: TxtCache, deadline: Deadline, cached_only: bool = False) -> None:
        self.txt = txt
        self.deadline = deadline
        self.cached_only = cached_only
        self.outcome = "none"  # "found", "missing", "unusable", "temporary"
        self.record: bytes | None = None

    def key(self, name: bytes) -> _PublicKey | None:
        try:
            records = self.txt.lookup(
                name.decode("ascii", "replace"), self.deadline, cached_only=self.cached_only
            )
        except TxtTemporaryError:
            self.outcome = "temporary"
            return None
        if not records:
            self.outcome = "missing"
            return None
        self.record = records[0]  # RFC 6376 3.6.2.2: several records at one name: undefined
        key = _parsed_key(self.record)
        self.outcome = "found" if key is not None else "unusable"
        return key

    def __call__(self, name: bytes, timeout: float = 5.0) -> bytes | None:
        """dkimpy's `dnsfunc` shape, for any path of dkimpy that still looks a record up."""
        return self.record if self.key(name.rstrip(b".")) is not None else None


class ProbedKeys(dkim.DomainSigner):
    """dkimpy's signer with our message split and keys from a `KeyProbe` (DKIM here, ARC in
    smtp_edge/arc_check.py): the message is passed as for dkimpy, the probe as its dnsfunc."""

    def set_message(self, message: bytes) -> None:
        super().set_message(b"")  # resets what a verification records
        self.headers, self.body = dkimpy_fast.rfc822_parse(message)

    def verify_sig(self, sig: Any, include_headers: Any, sig_header: Any, dnsfunc: Any) -> bool:
        """dkimpy's own, with the key from the probe's cache instead of parsed again."""
        key = dnsfunc.key(sig[b"s"] + b"._domainkey." + sig[b"d"])
        if key is None:
            return False
        self.pk, self.keysize, self.ktag, self.seqtlsrpt = key
        return bool(self.verify_sig_process(sig, include_headers, sig_header, dnsfunc))


class _Message(ProbedKeys, dkim.DKIM):
    pass




def read_header(raw: bytes) -> tuple[HeaderFields, dkim_lean.LeanMessage | None]:
    """The header fields, and the message as the lean verifier reads it (None: not its case)."""
    lean = dkim_lean.read(raw)
    return (dkim_lean.unfolded(lean) if lean is not None else header_fields(raw)), lean


def verify_signatures(
    raw: bytes,
    fields: HeaderFields,
    txt: TxtCache,
    deadline: Deadline,
    *,
    cached_only: bool = False,
    lean: dkim_lean.LeanMessage | None = None,
) -> list[DkimResult]:
    """One result per DKIM-Signature field (topmost first, at most MAX_SIGNATURES). With
    `cached_only`, raises NotCached as soon as a key is not in the cache. `lean` is the second
    half of `read_header`'s answer when the caller has it."""
    signatures = [value for name, value in fields if name == b"dkim-signature"]
    if not signatures:
        return []
    signatures = signatures[:MAX_SIGNATURES]
    lean = lean or dkim_lean.read(raw)
    if lean is not None and len(lean.signatures[:MAX_SIGNATURES]) != len(signatures):
        lean = None  # cannot happen for a header block it reads; if it did, dkimpy decides
    message: _Message | None = None
    if lean is None:
        message = _dkimpy_message(raw)
        if message is None:
            return [DkimResult(*_tags(value), "neutral") for value in signatures]
    results = []
    for index, value in enumerate(signatures):
        probe = KeyProbe(txt, deadline, cached_only)
        result = dkim_lean.verify(lean, index, probe) if lean is not None else None
        if result is None:
            # Outside the lean verifier's case (smtp_edge/dkim_lean.py): dkimpy decides.
            message = message or _dkimpy_message(raw)
            result = _verify(message, index, probe) if message is not None else "neutral"
        read = dkim_lean.domain_and_selector(lean, index) if lean is not None else None
        domain, selector = _names(*read) if read is not None else _tags(value)
        results.append(DkimResult(domain, selector, result))
    return results


def _dkimpy_message(raw: bytes) -> _Message | None:
    try:
        return _Message(raw, logger=_dkimpy_log)
    except (dkim.DKIMException, IndexError, ValueError):
        # dkimpy cannot read the header block (an IndexError for a message that begins with a
        # folded line, as real ones in the corpus do), so no signature can be evaluated.
        return None


def _tags(value: bytes) -> tuple[str, str]:
    tags = dkim_lean.tags(value) or {}  # dkim.util.parse_tag_value's, None where it raises
    return _names(tags.get(b"d", b""), tags.get(b"s", b""))


def _names(domain: bytes, selector: bytes) -> tuple[str, str]:
    return domain.decode("ascii", "replace").lower(), selector.decode("ascii", "replace")


def _verify(message: _Message, index: int, probe: KeyProbe) -> str:
    try:
        prepared = message.verify_headerprep(index)
    except dkim.DKIMException:
        return "neutral"  # malformed tags, expired, unknown algorithm: nothing to check
    if not prepared:
        return "neutral"
    signature, include_headers, headers = prepared
    try:
        verified = message.verify_sig(signature, include_headers, headers[index], probe)
    except dkim.ValidationError:
        return "fail"  # the body hash does not match
    except dkim.KeyFormatError:
        return "permerror"  # e.g. a key below 1024 bits (RFC 8301)
    except dkim.DKIMException:
        return "neutral"  # e.g. an invalid c=, an Ed25519 key without its library
    except NotCached:
        raise
    except Exception:
        log.exception("DKIM: unexpected error verifying a signature")
        return "temperror"
    if verified:
        return "pass"
    if probe.outcome == "temporary":
        return "temperror"
    if probe.outcome in ("missing", "unusable"):
        return "permerror"
    return "fail"
