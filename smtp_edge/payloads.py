"""Turning received bytes into the POST: parse, render in the address's format, sign.

Runs on the event loop for small messages and in a worker thread for the rest (parsing a 25 MB
message takes a while and must not stall other sessions; see `EdgeContext.in_cpu`). It returns
only what the POST and the history need, so the parsed message (decoded attachments, text) is
freed before the POST starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from provider.crypto import SecretBox
from provider.inbound import Envelope, parse_message, render, sign
from provider.inbound.delivery_id import delivery_id
from provider.models.base import utcnow
from provider.services.routing import Route
from provider.settings import Settings

from .stores import StoreUploads


@dataclass(frozen=True)
class PreparedPost:
    content_type: str
    body: bytes
    signature: str | None
    delivery_id: str  # X-CloudMailin-Delivery-Id
    message_id: str | None
    subject: str | None
    stored_message_key: str | None = None  # where the message store put the message


@lru_cache(maxsize=4096)
def _signing_secret(keys: tuple[str, tuple[str, ...]], encrypted: bytes) -> str:
    """Addresses' signing secrets, decrypted once each: Fernet per message was a few percent of
    the edge's CPU, and the key that decrypts them is in this process's memory anyway."""
    return SecretBox(*keys).decrypt(encrypted)


def prepare_post(
    settings: Settings,
    route: Route,
    raw: bytes,
    envelope: Envelope,
    stores: StoreUploads | None = None,
    received_at: datetime | None = None,
) -> PreparedPost:
    """Raises MessageTooComplex for a message over the parser's caps (the edge answers 554), and
    StoreFailed when the route has a store (`stores` given) that does not take the message."""
    parsed = parse_message(raw)
    stored_key = None
    if route.store is not None and stores is not None:
        # Uploaded between parse and render: the POST carries URLs, and the decoded attachments
        # are dropped here, before the payload is built.
        parsed, envelope, stored_key = stores.put(
            route.store, raw, parsed, envelope, received_at or utcnow()
        )
    payload = render(route.format, raw, parsed, envelope, size_as_string=route.size_as_string)
    signature = None
    if route.signing_secret_enc:
        secret = _signing_secret(
            (settings.encryption_key, settings.encryption_keys_old), bytes(route.signing_secret_enc)
        )
        signature = sign(secret, payload.body, int(time.time()))
    return PreparedPost(
        content_type=payload.content_type,
        body=payload.body,
        signature=signature,
        delivery_id=delivery_id(route.key, envelope.recipients, raw),
        message_id=parsed.message_id,
        subject=parsed.subject,
        stored_message_key=stored_key,
    )
