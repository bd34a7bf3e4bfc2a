"""Sending domains: the domains an add-on sends from, their DKIM keys, and proof of control.

One set of operations for every way in (the sending domains API today, the dashboard later).
Adding a domain generates its DKIM key pair (the private half encrypted at rest) and a random
verification token; the add-on then publishes two TXT records, and `verify` reads them back
through the deployment's resolver (`DNS_NAMESERVERS`). Only a verified domain (and its
subdomains) may appear in From (`services.sending.may_send_from`), and its key signs the mail at
delivery (`workers.delivery.dkim`).

The verification record lives at `_cloudmailin.<domain>`, not at the domain itself: the apex TXT
set already carries SPF and often other vendors' tokens (some DNS hosts cap it), and a name of its
own can be a CNAME where the apex cannot. A domain belongs to one add-on at a time (the
`domains` table is unique on name and kind); an unverified claim lapses after
`UNVERIFIED_CLAIM_LIFETIME` so nobody can hold a domain they cannot prove. Once verified, a domain
stays verified until it is deleted (or its add-on deprovisioned): a later `verify` that finds the
records gone reports it, but a DNS mistake or outage never stops mail on its own.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import dns.resolver
import idna
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..crypto import box_for
from ..dns import DnsError, lookup_txt, make_resolver
from ..models import Domain
from ..models.base import utcnow
from ..models.domain import SENDING
from ..outbound.dkim import DEFAULT_SELECTOR, dns_record, new_key_pair, public_key_of, record_name
from ..settings import Settings
from . import applog

log = logging.getLogger(__name__)

VERIFICATION_LABEL = "_cloudmailin"
VERIFICATION_PREFIX = "cloudmailin-verification="
UNVERIFIED_CLAIM_LIFETIME = timedelta(days=7)
MAX_NAME_LENGTH = 253 - len(record_name("", DEFAULT_SELECTOR))
"""A DNS name holds 253 characters, and the DKIM record's name is the longest we publish."""

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

OK, MISSING, WRONG, LOOKUP_FAILED = "ok", "missing", "wrong", "lookup_failed"
DKIM, VERIFICATION, SPF = "dkim", "verification", "spf"


class InvalidDomainName(ValueError):
    """Not a name an add-on can send from (malformed, a bare host, the service's own domains)."""


class DomainTaken(Exception):
    """The domain is already a sending domain, of this add-on or of another one."""


class UnknownSendingDomain(LookupError):
    """This add-on has no such sending domain (another add-on's included, so names tell nothing)."""


@dataclass(frozen=True)
class DnsRecord:
    type: str
    name: str
    value: str
    purpose: str
    required: bool


@dataclass(frozen=True)
class RecordCheck:
    record: DnsRecord
    status: str
    detail: str


@dataclass(frozen=True)
class Verification:
    domain: Domain
    verified: bool
    """Whether the domain is verified now (it may send), which a failed re-check leaves as it was."""
    checks: tuple[RecordCheck, ...]


def sending_domain_name(settings: Settings, raw: object) -> str:
    """`raw` as stored: IDNA A-labels (UTS 46 mapping, so lower case), no final dot."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidDomainName("name must be a domain name, such as mail.example.com.")
    text = raw.strip()
    text = text[:-1] if text.endswith(".") else text
    if len(text) > 4 * MAX_NAME_LENGTH:  # before IDNA's work, and not echoed: far too long either way
        raise InvalidDomainName(f"name is longer than {MAX_NAME_LENGTH} characters.")
    try:
        name = idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise InvalidDomainName(f"{raw!r} is not a valid domain name.") from None
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise InvalidDomainName(f"{raw!r} is not a valid domain name.")
    if len(labels) < 2 or labels[-1].isdigit():
        raise InvalidDomainName(f"{raw!r} is not a domain name with a top-level domain, such as example.com.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidDomainName(f"{raw!r} is longer than {MAX_NAME_LENGTH} characters.")
    for own in (settings.inbound_domain, settings.bounce_domain):
        if name == own or name.endswith("." + own) or own.endswith("." + name):
            raise InvalidDomainName(f"{name} is this service's own domain (or a parent of it) and cannot be "
                                    "a sending domain.")
    return name


def resource_domains(session: Session, resource_id: str) -> list[Domain]:
    mine = select(Domain).where(Domain.resource_id == resource_id, Domain.kind == SENDING)
    return list(session.scalars(mine.order_by(Domain.name)))


def resource_domain(session: Session, settings: Settings, resource_id: str, raw_name: str) -> Domain:
    """The add-on's sending domain called `raw_name` (any case, Unicode or A-labels)."""
    try:
        name = sending_domain_name(settings, raw_name)
    except InvalidDomainName:
        name = None
    domain = None
    if name is not None:
        domain = session.scalar(
            select(Domain).where(
                Domain.resource_id == resource_id, Domain.kind == SENDING, Domain.name == name
            )
        )
    if domain is None:
        raise UnknownSendingDomain(f"No sending domain {raw_name} on this account.")
    return domain


def add_domain(
    session: Session, settings: Settings, resource_id: str, raw_name: object, *, now: datetime | None = None
) -> Domain:
    """Add a sending domain with a new DKIM key and verification token; commits."""
    name = sending_domain_name(settings, raw_name)
    now = now or utcnow()
    private, _public = new_key_pair()  # before taking the row lock: key generation takes a while
    existing = session.scalar(
        select(Domain).where(Domain.name == name, Domain.kind == SENDING).with_for_update()
    )
    if existing is not None:
        if existing.resource_id == resource_id:
            session.rollback()
            raise DomainTaken(f"{name} is already a sending domain of this add-on.")
        if existing.verified_at is not None or existing.created_at > now - UNVERIFIED_CLAIM_LIFETIME:
            session.rollback()
            raise DomainTaken(_taken_text(name))
        released = existing.resource_id
        session.delete(existing)
        session.flush()
        applog.record(session, settings, released,
                      f"cloudmailin: sending domain {name} released (unverified for "
                      f"{UNVERIFIED_CLAIM_LIFETIME.days} days, added by another add-on)")
        log.info("unverified sending domain released domain=%s resource=%s", name, released)
    domain = Domain(
        resource_id=resource_id,
        name=name,
        kind=SENDING,
        verification_token=secrets.token_hex(16),
        dkim_selector=DEFAULT_SELECTOR,
        dkim_private_key_enc=box_for(settings).encrypt(private),
        created_at=now,
    )
    session.add(domain)
    try:
        session.flush()
    except IntegrityError:  # a concurrent add of the same name committed first
        session.rollback()
        raise DomainTaken(_taken_text(name)) from None
    applog.record(session, settings, resource_id, f"cloudmailin: sending domain {name} added")
    log.info("sending domain added domain=%s resource=%s", name, resource_id)
    session.commit()
    return domain


def _taken_text(name: str) -> str:
    return (f"{name} is a sending domain of another add-on. A claim that is not verified within "
            f"{UNVERIFIED_CLAIM_LIFETIME.days} days lapses.")


def delete_domain(session: Session, settings: Settings, resource_id: str, raw_name: str) -> None:
    """Delete the add-on's sending domain and its key; mail from it is refused from the commit on."""
    domain = resource_domain(session, settings, resource_id, raw_name)
    session.delete(domain)
    applog.record(session, settings, resource_id, f"cloudmailin: sending domain {domain.name} deleted")
    log.info("sending domain deleted domain=%s resource=%s", domain.name, resource_id)
    session.commit()


def public_key(settings: Settings, domain: Domain) -> str:
    assert domain.dkim_private_key_enc is not None  # every sending domain is added with a key
    return public_key_of(box_for(settings).decrypt(domain.dkim_private_key_enc))


def dns_records(settings: Settings, domain: Domain) -> list[DnsRecord]:
    """What the add-on publishes: the DKIM key and the token (both required), and SPF (advised).

    The envelope sender is on BOUNCE_DOMAIN, so receivers check SPF there and DKIM gives DMARC its
    alignment; the SPF include only helps receivers that look at the From domain's SPF."""
    return [
        DnsRecord("TXT", record_name(domain.name, domain.dkim_selector or DEFAULT_SELECTOR),
                  dns_record(public_key(settings, domain)), DKIM, True),
        DnsRecord("TXT", f"{VERIFICATION_LABEL}.{domain.name}",
                  f"{VERIFICATION_PREFIX}{domain.verification_token}", VERIFICATION, True),
        DnsRecord("TXT", domain.name, f"v=spf1 include:{settings.spf_include} ~all", SPF, False),
    ]


def verify_domain(
    session: Session, settings: Settings, resource_id: str, raw_name: str, *, now: datetime | None = None
) -> Verification:
    """Look the records up; mark the domain verified when both required ones are right. Commits."""
    domain = resource_domain(session, settings, resource_id, raw_name)
    domain_id, records = domain.id, dns_records(settings, domain)
    session.commit()  # no transaction stays open across the DNS look-ups
    resolver = make_resolver(settings.dns_nameservers)
    checks = tuple(_check(resolver, record) for record in records)
    verified = all(check.status == OK for check in checks if check.record.required)
    locked = session.scalar(select(Domain).where(Domain.id == domain_id).with_for_update())
    if locked is None:
        session.rollback()
        raise UnknownSendingDomain(f"No sending domain {raw_name} on this account.")
    if verified and locked.verified_at is None:
        locked.verified_at = now or utcnow()
        applog.record(session, settings, resource_id, f"cloudmailin: sending domain {locked.name} verified")
        log.info("sending domain verified domain=%s resource=%s", locked.name, resource_id)
    session.commit()
    return Verification(locked, locked.verified_at is not None, checks)


def _check(resolver: dns.resolver.Resolver, record: DnsRecord) -> RecordCheck:
    try:
        found = lookup_txt(resolver, record.name)
    except DnsError as exc:
        detail = f"Looking up TXT at {record.name} failed ({exc}); try again."
        return RecordCheck(record, LOOKUP_FAILED, detail)
    judge = {DKIM: _judge_dkim, VERIFICATION: _judge_token, SPF: _judge_spf}[record.purpose]
    status, detail = judge(record, found)
    return RecordCheck(record, status, detail)


def _tags(value: str) -> dict[str, str]:
    """A DKIM record's tag=value list (RFC 6376 3.6.1); whitespace inside values is folding."""
    tags: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, tag_value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = re.sub(r"\s+", "", tag_value)
    return tags


def _judge_dkim(record: DnsRecord, found: list[str]) -> tuple[str, str]:
    keys = [tags for tags in map(_tags, found) if "p" in tags]
    if not found:
        return MISSING, f"No TXT record at {record.name}; publish {record.value}"
    if not keys:
        return WRONG, f"The TXT record at {record.name} is not a DKIM key (no p= tag); publish {record.value}"
    if len(keys) > 1:
        return WRONG, f"{len(keys)} DKIM keys are published at {record.name}; keep only {record.value}"
    (tags,) = keys
    expected = _tags(record.value)["p"]
    if tags.get("k", "rsa").lower() != "rsa" or not hmac.compare_digest(tags["p"], expected):
        return WRONG, f"The DKIM key at {record.name} is another key; replace it with {record.value}"
    return OK, f"The DKIM key at {record.name} is published."


def _judge_token(record: DnsRecord, found: list[str]) -> tuple[str, str]:
    tokens = [value.strip() for value in found if value.strip().startswith(VERIFICATION_PREFIX)]
    if any(hmac.compare_digest(token.encode(), record.value.encode()) for token in tokens):
        return OK, f"The verification token at {record.name} is published."
    if tokens:
        return WRONG, f"The verification token at {record.name} is another one; publish {record.value}"
    return MISSING, f"No verification TXT record at {record.name}; publish {record.value}"


def _judge_spf(record: DnsRecord, found: list[str]) -> tuple[str, str]:
    policies = [value for value in found if value.lower().split(" ", 1)[0] == "v=spf1"]
    include = record.value.split()[1]  # "include:<SPF_INCLUDE>"
    if not policies:
        return MISSING, f"No SPF record at {record.name} (optional); publish {record.value}"
    if len(policies) > 1:
        return WRONG, f"{len(policies)} SPF records at {record.name}; receivers ignore all (RFC 7208 4.5)"
    terms = [term.lstrip("+").lower() for term in policies[0].split()]
    if include not in terms:
        return WRONG, f"The SPF record at {record.name} lacks {include} (optional)"
    return OK, f"The SPF record at {record.name} has {include}."
