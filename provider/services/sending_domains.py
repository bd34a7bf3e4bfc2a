"""Sending domains: the domains an add-on sends from, their DKIM keys, and proof of control.

One set of operations for every way in (the sending domains API today, the dashboard later).
Adding a domain generates its DKIM key pair (the private half encrypted at rest) and a random
verification token; the add-on then publishes two TXT records, and `verify` reads them back
through the deployment's resolver (`DNS_NAMESERVERS`). Only a verified domain (and its
subdomains) may appear in From (`services.sending.accept` checks it), and its key signs the mail at
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
from datetime import datetime

import dns.resolver
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..crypto import box_for
from ..dns import make_resolver
from ..models import Domain
from ..models.base import utcnow
from ..models.domain import SENDING
from ..outbound.dkim import DEFAULT_SELECTOR, dns_record, new_key_pair, public_key_of, record_name
from ..settings import Settings
from . import applog, applog_lines
from .domain_names import (
    LOOKUP_FAILED,
    MISSING,
    OK,
    UNVERIFIED_CLAIM_LIFETIME,
    VERIFICATION,
    VERIFICATION_LABEL,
    VERIFICATION_PREFIX,
    WRONG,
    DnsRecord,
    DomainTaken,
    InvalidDomainName,
    RecordCheck,
    Verification,
    insert_claim,
    judge_token,
    lookup_txt_check,
    new_token,
    normalized_name,
    release_lapsed_claim,
    remove_domain,
    token_record,
)

__all__ = [
    "LOOKUP_FAILED", "MISSING", "OK", "UNVERIFIED_CLAIM_LIFETIME", "VERIFICATION", "VERIFICATION_LABEL",
    "VERIFICATION_PREFIX", "WRONG", "DnsRecord", "DomainTaken", "InvalidDomainName", "RecordCheck",
    "Verification",
]

log = logging.getLogger(__name__)

LABEL = "sending domain"
MAX_NAME_LENGTH = 253 - len(record_name("", DEFAULT_SELECTOR))
"""A DNS name holds 253 characters, and the DKIM record's name is the longest we publish."""

DKIM, SPF = "dkim", "spf"


class UnknownSendingDomain(LookupError):
    """This add-on has no such sending domain (another add-on's included, so names tell nothing)."""


def sending_domain_name(settings: Settings, raw: object) -> str:
    """`raw` as stored: IDNA A-labels (UTS 46 mapping, so lower case), no final dot."""
    return normalized_name(settings, raw, what="a sending domain", max_length=MAX_NAME_LENGTH)


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
    release_lapsed_claim(session, settings, resource_id, name, SENDING, label=LABEL, now=now)
    domain = Domain(
        resource_id=resource_id,
        name=name,
        kind=SENDING,
        verification_token=new_token(),
        dkim_selector=DEFAULT_SELECTOR,
        dkim_private_key_enc=box_for(settings).encrypt(private),
        created_at=now,
    )
    insert_claim(session, domain, LABEL)
    applog.record(session, settings, resource_id, applog_lines.domain(LABEL, name, "added"))
    log.info("sending domain added domain=%s resource=%s", name, resource_id)
    session.commit()
    return domain


def delete_domain(session: Session, settings: Settings, resource_id: str, raw_name: str) -> None:
    """Delete the add-on's sending domain and its key; mail from it is refused from the commit on."""
    domain = resource_domain(session, settings, resource_id, raw_name)
    remove_domain(session, settings, domain, LABEL)


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
        token_record(domain.name, domain.verification_token),
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
        applog.record(session, settings, resource_id, applog_lines.domain(LABEL, locked.name, "verified"))
        log.info("sending domain verified domain=%s resource=%s", locked.name, resource_id)
    session.commit()
    return Verification(locked, locked.verified_at is not None, checks)


def _check(resolver: dns.resolver.Resolver, record: DnsRecord) -> RecordCheck:
    found, failed = lookup_txt_check(resolver, record)
    if found is None:
        assert failed is not None
        return failed
    judge = {DKIM: _judge_dkim, VERIFICATION: judge_token, SPF: _judge_spf}[record.purpose]
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
