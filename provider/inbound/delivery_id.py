"""`X-CloudMailin-Delivery-Id`: the key a target can drop duplicate deliveries by.

The POST is made inside the SMTP transaction, so when the edge dies after the target answered
and before the sender heard 250, the sender retries and the target gets the message again. The
id is the same for such a retry and differs otherwise, so it is derived, never random: SHA-256
over the route (the forward address's row, or postmaster), the envelope recipients of the POST
(lower-cased, sorted, duplicates dropped: different tags or local parts of one address are
different deliveries) and the message exactly as the sender sent it (the bytes after DATA; if
the edge ever adds a trace header, the id must stay over the bytes before it). MAIL FROM is left
out: it adds nothing a retry could tell apart and some senders rewrite it between attempts.

Each part is length-prefixed so no two different inputs hash the same byte string, and the
message is fed to the hash as it is (no copy of a body that may be 40 MB).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

HEADER = "X-CloudMailin-Delivery-Id"
_DOMAIN = b"cloudmailin-delivery-id/1\n"


def _part(data: bytes) -> bytes:
    return b"%d:%s" % (len(data), data)


def delivery_id(route_key: str, recipients: Iterable[str], raw: bytes) -> str:
    """64 hex digits; the same for the same message to the same recipients of the same route."""
    digest = hashlib.sha256(_DOMAIN)
    digest.update(_part(route_key.encode("utf-8")))
    unique = sorted({recipient.lower() for recipient in recipients})
    digest.update(b"%d\n" % len(unique))
    for recipient in unique:
        digest.update(_part(recipient.encode("utf-8", "surrogatepass")))
    digest.update(b"%d:" % len(raw))
    digest.update(raw)
    return digest.hexdigest()
