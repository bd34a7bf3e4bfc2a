"""The DKIM signature a message gets at delivery: from the verified sending domain of its
resource that its From domain belongs to (the domain itself or a parent), when it has a key.

Keys are read and decrypted once a minute per domain, not per message.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.crypto import box_for
from provider.models import Domain
from provider.models.domain import SENDING
from provider.outbound.dkim import signature
from provider.settings import Settings

from .store import Message

KEY_CACHE_SECONDS = 60.0


def parent_domains(domain: str) -> list[str]:
    """`a.b.example` -> [`a.b.example`, `b.example`, `example`]."""
    labels = domain.lower().split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


class DkimSigner:
    def __init__(self, settings: Settings) -> None:
        self.box = box_for(settings)
        self._keys: dict[tuple[str, str], tuple[float, tuple[str, str, str] | None]] = {}

    def _key(self, session: Session, resource_id: str, domain: str) -> tuple[str, str, str] | None:
        cached = self._keys.get((resource_id, domain))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        candidates = parent_domains(domain)
        rows = session.execute(
            select(Domain.name, Domain.dkim_selector, Domain.dkim_private_key_enc).where(
                Domain.resource_id == resource_id,
                Domain.kind == SENDING,
                Domain.verified_at.is_not(None),
                Domain.dkim_private_key_enc.is_not(None),
                Domain.name.in_(candidates),
            )
        ).all()
        found = None
        if rows:
            name, selector, encrypted = max(rows, key=lambda row: len(row.name))  # the closest domain
            assert encrypted is not None  # the query asks for rows with a key
            found = (name, selector or "cloudmailin", self.box.decrypt(encrypted))
        self._keys[(resource_id, domain)] = (time.monotonic() + KEY_CACHE_SECONDS, found)
        return found

    def __call__(self, session: Session, message: Message) -> bytes:
        key = self._key(session, message.resource_id, message.sender_domain)
        if key is None:
            return b""
        name, selector, private_pem = key
        return signature(message.raw, name, selector, private_pem)
