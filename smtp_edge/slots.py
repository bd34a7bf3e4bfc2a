"""Who gets an SMTP session: the edge-wide cap (SMTP_MAX_SESSIONS) and each client address's share
of it (SMTP_MAX_SESSIONS_PER_CLIENT), so that one address cannot take every slot.

A session is counted the moment asyncio creates its protocol. asyncio accepts a whole burst of
connections and creates all their protocols before it connects any of them, so a count taken when
a session connected let 523 of a burst of 600 through a cap of 500. The client's address is only
known once connected, so the per-address share is checked then: a session over it is answered
421 4.7.0 and closed, and gives its slot back at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any

from provider.errors import ServiceBusy, ShuttingDown, TooManyFromClient

from .protocol import EdgeSMTP


class _Busy(asyncio.Protocol):
    """Stands in for a session over the cap: 421 and goodbye (RFC 5321 section 3.8)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(f"{ServiceBusy().smtp_reply}\r\n".encode("ascii"))
        transport.close()


def client_key(peer: Any) -> str | None:
    """The address a client's sessions are counted under. An IPv6 client is counted by its /64,
    which one host or one customer usually holds whole (RFC 6177); an IPv4-mapped IPv6 address
    (a dual-stack listener) counts as the IPv4 address it is."""
    if not isinstance(peer, tuple) or not peer:
        return None
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return str(peer[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class Slots:
    def __init__(self, limit: int, per_client: int) -> None:
        self.limit = limit
        self.per_client = per_client
        self.sessions: set[EdgeSMTP] = set()
        self.closing = False
        self._clients: dict[str, int] = {}
        self._client_of: dict[EdgeSMTP, str] = {}

    def capped(self, factory: Callable[[], EdgeSMTP]) -> Callable[[], asyncio.Protocol]:
        """The protocol factory of a listener: a counted session, or `_Busy` over the cap."""

        def create() -> asyncio.Protocol:
            if len(self.sessions) >= self.limit:
                return _Busy()
            session = factory()
            self.sessions.add(session)
            return session

        return create

    def admit(self, session: EdgeSMTP, peer: Any) -> str | None:
        """Called as `session` connects: None to go on, else the reply to close it with."""
        refusal: str | None = None
        key = client_key(peer)
        if self.closing:
            refusal = ShuttingDown().smtp_reply
        elif key is not None and self._clients.get(key, 0) >= self.per_client:
            refusal = TooManyFromClient().smtp_reply
        if refusal is not None:
            self.sessions.discard(session)
            return refusal
        if key is not None:
            self._clients[key] = self._clients.get(key, 0) + 1
            self._client_of[session] = key
        return None

    def release(self, session: EdgeSMTP) -> None:
        self.sessions.discard(session)
        key = self._client_of.pop(session, None)
        if key is None:
            return
        left = self._clients[key] - 1
        if left:
            self._clients[key] = left
        else:
            del self._clients[key]
