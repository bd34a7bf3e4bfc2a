"""Custom inbound domains: an add-on's own domains, routed to its address once proven.

One set of operations for every way in (the inbound domains API today, the dashboard later).
A domain (`shop.example`, or `*.shop.example` for every name exactly one level below it) is
added with an optional local-part pattern (`services.local_parts`; without one the domain is a
catch-all), and routed by the SMTP edge (`routing._custom_domain_route`) only once verified:

- its MX records name the service's MX host (`INBOUND_MX_HOST`), at the most preferred level,
  so mail for it reaches this service at all;
- the TXT record `_cloudmailin.<domain>` (a wildcard's at its parent) holds the domain's
  verification token, so only someone who controls its DNS can claim it. An MX record alone
  proves nothing: anyone could otherwise claim a domain whose owner points it here first, or
  keep claiming one and catch its mail the moment its owner does.

The plan bounds how many an add-on holds (`Plan.custom_domains`; free and test: none). A domain
belongs to one add-on at a time, an unverified claim lapses (`domain_names`), a verified domain
stays verified until deleted or its add-on deprovisioned (`provisioning.deprovision` deletes its
domains), and every change reaches the edges' route caches by NOTIFY (migration 0014).
"""

from __future__ import annotations

import logging
from datetime import datetime

import dns.resolver
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..dns import DnsError, DnsNoSuchDomain, lookup_mx, make_resolver
from ..models import Address, Domain, Resource
from ..models.base import utcnow
from ..models.domain import INBOUND
from ..plans import DEFAULT_PLAN, PLANS, Plan, UnknownPlan, plan_named
from ..settings import Settings
from . import applog, applog_lines
from .domain_names import (
    LOOKUP_FAILED,
    MISSING,
    OK,
    VERIFICATION_LABEL,
    WRONG,
    DnsRecord,
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
from .local_parts import InvalidPattern, compiled

log = logging.getLogger(__name__)

LABEL = "inbound domain"
MAX_NAME_LENGTH = 253 - len(VERIFICATION_LABEL) - 1
"""A DNS name holds 253 characters, and the token's name (`_cloudmailin.<domain>`) is the longest."""
MX = "mx"
MX_PREFERENCE = 10


class UnknownInboundDomain(LookupError):
    """This add-on has no such inbound domain (another add-on's included, so names tell nothing)."""


class CustomDomainLimit(Exception):
    """The plan allows no (more) custom domains."""


class NoAddress(Exception):
    """The add-on has no forward address to route a domain to (none is ever missing in practice)."""


def inbound_domain_name(settings: Settings, raw: object) -> str:
    return normalized_name(settings, raw, what="a custom inbound domain", max_length=MAX_NAME_LENGTH,
                           wildcard=True)


def local_part_regex(raw: object) -> str | None:
    """The pattern as stored, None for a catch-all; `InvalidPattern` when RE2 would not run it."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidPattern("local_part_regex must be a string (a pattern) or null (every local part).")
    compiled(raw)
    return raw


def resource_domains(session: Session, resource_id: str) -> list[Domain]:
    mine = select(Domain).where(Domain.resource_id == resource_id, Domain.kind == INBOUND)
    return list(session.scalars(mine.order_by(Domain.name)))


def resource_domain(session: Session, settings: Settings, resource_id: str, raw_name: str) -> Domain:
    """The add-on's inbound domain called `raw_name` (any case, Unicode or A-labels)."""
    try:
        name: str | None = inbound_domain_name(settings, raw_name)
    except ValueError:
        name = None
    domain = None
    if name is not None:
        mine = select(Domain).where(Domain.resource_id == resource_id, Domain.kind == INBOUND)
        domain = session.scalar(mine.where(Domain.name == name))
    if domain is None:
        raise UnknownInboundDomain(f"No inbound domain {raw_name} on this account.")
    return domain


def add_domain(
    session: Session, settings: Settings, resource_id: str, raw_name: object, raw_regex: object = None,
    *, now: datetime | None = None,
) -> Domain:
    """Claim a domain for the add-on's address, pending verification; commits."""
    name = inbound_domain_name(settings, raw_name)
    pattern = local_part_regex(raw_regex)
    now = now or utcnow()
    # The resource row's lock orders this against a plan change (which counts domains under it).
    locked = select(Resource).where(Resource.id == resource_id).with_for_update()
    resource = session.scalar(locked.execution_options(populate_existing=True))
    assert resource is not None  # authenticated a moment ago; a deprovision keeps the row
    plan = _plan(resource.plan)
    mine = select(func.count()).select_from(Domain).where(Domain.resource_id == resource_id)
    held = session.scalar(mine.where(Domain.kind == INBOUND)) or 0
    if held >= plan.custom_domains:
        session.rollback()
        if not plan.custom_domains:
            raise CustomDomainLimit(f"The {plan.name} plan has no custom inbound domains; upgrade to a "
                                    "paid plan (starter and up) to add one.")
        raise CustomDomainLimit(f"The {plan.name} plan allows {plan.custom_domains} custom inbound domain"
                                f"{'' if plan.custom_domains == 1 else 's'} and this add-on has {held}; "
                                "delete one or upgrade.")
    address_id = session.scalar(
        select(Address.id).where(Address.resource_id == resource_id).order_by(Address.id).limit(1)
    )
    if address_id is None:
        session.rollback()
        raise NoAddress("This add-on has no forward address to route a domain to.")
    release_lapsed_claim(session, settings, resource_id, name, INBOUND, label=LABEL, now=now)
    domain = Domain(resource_id=resource_id, address_id=address_id, name=name, kind=INBOUND,
                    local_part_regex=pattern, verification_token=new_token(), created_at=now)
    insert_claim(session, domain, LABEL)
    which = f" for local parts {pattern}" if pattern is not None else ""
    applog.record(session, settings, resource_id, applog_lines.domain(LABEL, name, f"added{which}"))
    log.info("inbound domain added domain=%s resource=%s", name, resource_id)
    session.commit()
    return domain


def delete_domain(session: Session, settings: Settings, resource_id: str, raw_name: str) -> None:
    """Delete the add-on's inbound domain; the edges refuse its mail from the commit on."""
    domain = resource_domain(session, settings, resource_id, raw_name)
    remove_domain(session, settings, domain, LABEL)


def dns_records(settings: Settings, domain: Domain) -> list[DnsRecord]:
    """What the add-on publishes: the MX record and the token, both required."""
    return [
        DnsRecord("MX", domain.name, f"{MX_PREFERENCE} {settings.inbound_mx_host}", MX, True),
        token_record(domain.name, domain.verification_token),
    ]


def verify_domain(
    session: Session, settings: Settings, resource_id: str, raw_name: str, *, now: datetime | None = None
) -> Verification:
    """Look the records up; mark the domain verified (routed) when both are right. Commits."""
    domain = resource_domain(session, settings, resource_id, raw_name)
    domain_id, records = domain.id, dns_records(settings, domain)
    session.commit()  # no transaction stays open across the DNS look-ups
    resolver = make_resolver(settings.dns_nameservers)
    checks = tuple(_check(settings, resolver, record) for record in records)
    verified = all(check.status == OK for check in checks)
    locked = session.scalar(select(Domain).where(Domain.id == domain_id).with_for_update())
    if locked is None:
        session.rollback()
        raise UnknownInboundDomain(f"No inbound domain {raw_name} on this account.")
    if verified and locked.verified_at is None:
        locked.verified_at = now or utcnow()
        applog.record(session, settings, resource_id, applog_lines.domain(LABEL, locked.name, "verified"))
        log.info("inbound domain verified domain=%s resource=%s", locked.name, resource_id)
    session.commit()
    return Verification(locked, locked.verified_at is not None, checks)


def _check(settings: Settings, resolver: dns.resolver.Resolver, record: DnsRecord) -> RecordCheck:
    if record.purpose == MX:
        status, detail = _judge_mx(settings, resolver, record)
        return RecordCheck(record, status, detail)
    found, failed = lookup_txt_check(resolver, record)
    if found is None:
        assert failed is not None
        return failed
    status, detail = judge_token(record, found)
    return RecordCheck(record, status, detail)


def _judge_mx(settings: Settings, resolver: dns.resolver.Resolver, record: DnsRecord) -> tuple[str, str]:
    """OK when the service's MX host is among the most preferred MX records of the name (a
    wildcard's records are looked up at `*.<parent>` itself, where DNS answers with them)."""
    ours = settings.inbound_mx_host
    try:
        found = lookup_mx(resolver, record.name)
    except DnsNoSuchDomain:
        return MISSING, f"{record.name} does not exist in DNS; publish MX {record.value}"
    except DnsError as exc:
        return LOOKUP_FAILED, f"Looking up MX at {record.name} failed ({exc}); try again."
    if not found:
        return MISSING, f"No MX record at {record.name}; publish MX {record.value}"
    best = min(preference for preference, _host in found)
    preferred = sorted({host for preference, host in found if preference == best})
    if ours in preferred:
        return OK, f"The MX record of {record.name} names {ours}."
    listed = ", ".join(f"{preference} {host or '.'}" for preference, host in found)
    if any(host == ours for _preference, host in found):
        return WRONG, (f"The MX records of {record.name} are {listed}: {ours} is not the most preferred; "
                       f"publish MX {record.value} with the lowest preference.")
    return WRONG, f"The MX records of {record.name} are {listed}, not {ours}; publish MX {record.value}."


def _plan(name: str) -> Plan:
    """A row with a plan the catalogue lacks (never written by the partner API) gets the default's."""
    try:
        return plan_named(name)
    except UnknownPlan:
        return PLANS[DEFAULT_PLAN]

