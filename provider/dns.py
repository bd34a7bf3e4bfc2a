"""DNS look-ups through a resolver the settings choose.

Every process builds its resolver from the ``DNS_NAMESERVERS`` setting with :func:`make_resolver`
instead of using dnspython's process-wide default, so tests (and a deployment with a local
caching resolver) can point all look-ups at a server on 127.0.0.1. Timeouts are short because the
callers sit inside SMTP transactions, where a remote MTA is waiting.

A :class:`dns.resolver.Resolver` is safe to share between threads as long as nobody changes its
attributes after it is built, which is how this module uses it.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

DEFAULT_LIFETIME = 3.0
"""Seconds one look-up may take in total, over all retries and nameservers."""

MAX_TRY_TIMEOUT = 1.0
"""Seconds one attempt against one nameserver may take before the next attempt."""

DEFAULT_PORT = 53


class DnsError(Exception):
    """A look-up that did not produce an answer."""


class DnsTemporaryError(DnsError):
    """The answer is not known now (timeout, SERVFAIL, refused): trying later may succeed."""


class DnsPermanentError(DnsError):
    """The question has a definite negative answer, or cannot be asked (malformed name)."""


class DnsNoSuchDomain(DnsPermanentError):
    """NXDOMAIN: the name does not exist."""


def parse_nameservers(nameservers: str) -> list[tuple[str, int]]:
    """Read the settings string into (address, port) pairs.

    Accepted items, comma-separated: ``192.0.2.1``, ``192.0.2.1:5353``, ``2001:db8::1``,
    ``[2001:db8::1]``, ``[2001:db8::1]:5353``. Only IP addresses: a nameserver named by host name
    would need another resolver to find it. An empty string gives an empty list.
    """
    servers: list[tuple[str, int]] = []
    if not nameservers.strip():
        return servers
    for raw in nameservers.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"DNS nameservers {nameservers!r}: empty entry between commas")
        servers.append(_parse_one(item))
    return servers


def _parse_one(item: str) -> tuple[str, int]:
    port_text: str | None = None
    if item.startswith("["):
        host, sep, rest = item[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"DNS nameserver {item!r}: expected [IPv6] or [IPv6]:port")
        port_text = rest[1:] if rest else None
    elif item.count(":") == 1:
        host, port_text = item.split(":")
    else:
        host = item  # IPv4 without a port, or a bare IPv6 address (no port possible)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"DNS nameserver {item!r}: {host!r} is not an IP address "
            "(use 192.0.2.1, 192.0.2.1:5353 or [2001:db8::1]:5353)"
        ) from None
    if item.startswith("[") and address.version != 6:
        raise ValueError(f"DNS nameserver {item!r}: brackets are only for IPv6 addresses")
    port = DEFAULT_PORT
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"DNS nameserver {item!r}: port must be a number from 1 to 65535")
        port = int(port_text)
    return str(address), port


def make_resolver(nameservers: str, *, lifetime: float = DEFAULT_LIFETIME) -> dns.resolver.Resolver:
    """Build a resolver from the settings string; empty means the system's resolv.conf.

    ``lifetime`` bounds one look-up (all retries included). Raises ValueError for a malformed
    string, or when it is empty and the system has no usable resolver configuration.
    """
    if lifetime <= 0:
        raise ValueError("DNS lifetime must be positive")
    servers = parse_nameservers(nameservers)
    if servers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(a, p) for a, p in servers]
    else:
        try:
            resolver = dns.resolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration as exc:
            raise ValueError(
                f"DNS nameservers not set and the system resolver configuration is unusable: {exc}"
            ) from None
    resolver.lifetime = lifetime
    resolver.timeout = min(MAX_TRY_TIMEOUT, lifetime)
    # Large TXT answers (SPF, DKIM keys) then fit in UDP more often; dnspython retries over TCP
    # when a reply is truncated anyway.
    resolver.use_edns(0, 0, 1232)
    resolver.cache = None
    return resolver


def resolve(
    resolver: dns.resolver.Resolver, name: str, rdtype: str, *, lifetime: float | None = None
) -> dns.resolver.Answer | None:
    """Ask one question; None when the name exists but has no records of that type.

    Maps dnspython's exceptions onto :class:`DnsTemporaryError` / :class:`DnsPermanentError`.
    """
    try:
        qname = dns.name.from_text(name)
        return resolver.resolve(
            qname, rdtype, search=False, raise_on_no_answer=False, lifetime=lifetime
        )
    except dns.resolver.NXDOMAIN:
        raise DnsNoSuchDomain(f"{name}: no such domain") from None
    except dns.resolver.LifetimeTimeout:
        raise DnsTemporaryError(f"{name} {rdtype}: timed out") from None
    except dns.resolver.NoNameservers:
        raise DnsTemporaryError(f"{name} {rdtype}: no nameserver answered (SERVFAIL)") from None
    except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel) as exc:
        raise DnsPermanentError(f"{name!r}: not a valid domain name ({exc})") from None
    except (dns.name.IDNAException, UnicodeError) as exc:
        raise DnsPermanentError(f"{name!r}: not a valid domain name ({exc})") from None
    except dns.exception.DNSException as exc:
        raise DnsTemporaryError(f"{name} {rdtype}: {exc}") from None


def lookup_mx(resolver: dns.resolver.Resolver, domain: str) -> list[tuple[int, str]]:
    """MX records of ``domain`` as (preference, host), lowest preference first.

    An empty list means the domain exists but publishes no MX: the caller then falls back to the
    domain's own A/AAAA records (RFC 5321 section 5.1); this function does not. A host of ``"."``
    is a null MX (RFC 7505): the domain accepts no mail. NXDOMAIN raises :class:`DnsNoSuchDomain`.
    """
    answer = resolve(resolver, domain, "MX")
    if answer is None or answer.rrset is None:
        return []
    records = [
        (int(r.preference), r.exchange.to_text(omit_final_dot=True).lower()) for r in answer.rrset
    ]
    return sorted(records)


def lookup_txt(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    """TXT records at ``name``, each with its character-strings joined, decoded as UTF-8.

    A name that does not exist gives ``[]`` like a name without TXT records: for the TXT users
    (DKIM keys, DMARC policies) both mean "nothing published". Undecodable bytes become U+FFFD.
    """
    try:
        answer = resolve(resolver, name, "TXT")
    except DnsNoSuchDomain:
        return []
    if answer is None or answer.rrset is None:
        return []
    return [b"".join(r.strings).decode("utf-8", errors="replace") for r in answer.rrset]
