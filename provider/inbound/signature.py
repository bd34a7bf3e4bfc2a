"""`X-CloudMailin-Signature`: lets a target check a POST came from us without Basic auth.

Format (like Stripe's): `t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`. The time
is signed with the body so a captured request cannot be replayed later than the tolerance.
`verify_signature` accepts several v1 values (sent while a secret is being rotated).
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-CloudMailin-Signature"


def _mac(secret: bytes, body: bytes, timestamp: int) -> str:
    # Two updates rather than one concatenation: no copy of a body that may be 40 MB.
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b".", hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def _key(secret: bytes | str) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: bytes | str, body: bytes, timestamp: int) -> str:
    return f"t={int(timestamp)},v1={_mac(_key(secret), body, int(timestamp))}"


def verify_signature(
    secret: bytes | str, header_value: str, body: bytes, tolerance_s: float, now: float
) -> bool:
    """True when header_value signs body with secret at a time within tolerance_s of now."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header_value.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value.strip())
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(_key(secret), body, timestamp).encode("ascii")
    matched = False
    for candidate in candidates:
        # Compare every candidate (no early exit) and in constant time.
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return matched
