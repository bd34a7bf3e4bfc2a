"""Where a domain's mail goes: its MX hosts by preference, else its address (RFC 5321 section 5.1).

A null MX (RFC 7505: a single `0 .`) or a domain that does not exist is a permanent failure; a
DNS timeout or SERVFAIL is temporary. Answers are cached for a minute, so a burst of mail to one
domain costs one lookup. `OUTBOUND_SMARTHOST` replaces all of
it with one fixed host, for operators who relay and for tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dns.resolver

from provider.dns import DnsNoSuchDomain, DnsPermanentError, DnsTemporaryError, lookup_mx, resolve

SMTP_PORT = 25
CACHE_SECONDS = 60.0
"""provider.dns's resolver keeps no cache and hides TTLs, so answers are kept a fixed minute."""


@dataclass(frozen=True)
class Host:
    name: str
    """The MX name: the TLS server name and what events show."""
    address: str
    port: int


@dataclass(frozen=True)
class Destination:
    hosts: tuple[Host, ...]
    """In the order to try them: by MX preference, each name's addresses in DNS order."""


class DestinationError(Exception):
    """The domain's mail cannot be routed now (`permanent`: not ever, as it stands)."""

    def __init__(self, reply: str, *, permanent: bool) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


def smarthost(value: str) -> Destination | None:
    """`host:port` (or `host`, port 25) from the OUTBOUND_SMARTHOST setting."""
    if not value:
        return None
    host, _, port = value.rpartition(":") if ":" in value else (value, "", str(SMTP_PORT))
    host = host.strip("[]")
    return Destination((Host(host, host, int(port)),))


class MxResolver:
    """`port` is where MX hosts are reached: 25, except in tests, whose MXes are aiosmtpd servers
    on loopback addresses that share one unprivileged port."""

    def __init__(
        self, resolver: dns.resolver.Resolver, fixed: Destination | None = None, port: int = SMTP_PORT
    ) -> None:
        self.resolver = resolver
        self.fixed = fixed
        self.port = port
        self._cache: dict[str, tuple[float, Destination | DestinationError]] = {}

    def destination(self, domain: str) -> Destination:
        if self.fixed is not None:
            return self.fixed
        domain = domain.lower().rstrip(".")
        cached = self._cache.get(domain)
        if cached and cached[0] > time.monotonic():
            if isinstance(cached[1], DestinationError):
                raise cached[1]
            return cached[1]
        try:
            found, ttl = self._lookup(domain)
        except DestinationError as error:
            if error.permanent:
                self._cache[domain] = (time.monotonic() + 60.0, error)
            raise
        self._cache[domain] = (time.monotonic() + ttl, found)
        return found

    def _lookup(self, domain: str) -> tuple[Destination, float]:
        try:
            records = lookup_mx(self.resolver, domain)
        except DnsNoSuchDomain:
            raise DestinationError(f"550 5.1.2 Domain {domain} does not exist", permanent=True) from None
        except DnsPermanentError as error:
            raise DestinationError(f"550 5.1.2 {error}", permanent=True) from None
        except DnsTemporaryError as error:
            raise DestinationError(f"451 4.4.3 DNS lookup failed: {error}", permanent=False) from None
        if records and all(host in (".", "") for _, host in records):
            raise DestinationError(
                f"556 5.1.10 Domain {domain} accepts no mail (null MX, RFC 7505)", permanent=True
            )
        names = [host for _, host in records if host not in (".", "")]
        if not names:
            # No MX: the domain's own address records are its implicit MX (RFC 5321 section 5.1).
            hosts = self._addresses(domain)
            if not hosts:
                raise DestinationError(
                    f"550 5.1.2 Domain {domain} has no MX or address records", permanent=True
                )
            return Destination(tuple(hosts)), CACHE_SECONDS
        hosts = []
        failure: Exception | None = None
        for name in names:
            try:
                hosts.extend(self._addresses(name))
            except DestinationError as error:
                failure = error
        if not hosts:
            raise DestinationError(
                f"451 4.4.4 No address for any MX host of {domain}", permanent=False
            ) from failure
        return Destination(tuple(hosts)), CACHE_SECONDS

    def _addresses(self, name: str) -> list[Host]:
        hosts: list[Host] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = resolve(self.resolver, name, rdtype)
            except DnsNoSuchDomain:
                return hosts
            except DnsPermanentError as error:
                raise DestinationError(f"550 5.1.2 {error}", permanent=True) from None
            except DnsTemporaryError as error:
                raise DestinationError(f"451 4.4.3 DNS lookup failed: {error}", permanent=False) from None
            if answer is not None and answer.rrset is not None:
                hosts.extend(Host(name, record.to_text(), self.port) for record in answer.rrset)
        return hosts
