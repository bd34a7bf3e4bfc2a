"""What sending domains and custom inbound domains share: names, claims, the verification token.

Both kinds are rows of `domains` (unique on name and kind), claimed by one add-on at a time and
proven with a TXT token at `_cloudmailin.<domain>`; their services (`sending_domains`,
`inbound_domains`) add what is their own (DKIM keys, MX records, routing). Keeping the rules here
means a name accepted, refused or lapsed reads the same in both APIs.

A claim that is not verified within `UNVERIFIED_CLAIM_LIFETIME` lapses: the next add-on to add the
name takes it, so nobody holds a domain they cannot prove. A verified claim is kept until its
add-on deletes it (or is deprovisioned).
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

from ..dns import DnsError, lookup_txt
from ..models import Domain
from ..settings import Settings
from . import applog, applog_lines

log = logging.getLogger(__name__)

VERIFICATION_LABEL = "_cloudmailin"
VERIFICATION_PREFIX = "cloudmailin-verification="
UNVERIFIED_CLAIM_LIFETIME = timedelta(days=7)
WILDCARD = "*."

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

OK, MISSING, WRONG, LOOKUP_FAILED = "ok", "missing", "wrong", "lookup_failed"
VERIFICATION = "verification"


class InvalidDomainName(ValueError):
    """Not a name an add-on can use (malformed, a bare host, the service's own domains)."""


class DomainTaken(Exception):
    """The domain is already claimed in this kind, by this add-on or by another one."""


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
    """Whether the domain is verified now, which a failed re-check leaves as it was."""
    checks: tuple[RecordCheck, ...]


def normalized_name(
    settings: Settings, raw: object, *, what: str, max_length: int, wildcard: bool = False
) -> str:
    """`raw` as stored: IDNA A-labels (UTS 46 mapping, so lower case), no final dot; with
    `wildcard`, a leading `*.` is kept (the rest must be a domain name itself)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidDomainName("name must be a domain name, such as mail.example.com.")
    text = raw.strip()
    text = text[:-1] if text.endswith(".") else text
    star = ""
    if wildcard and text.startswith(WILDCARD):
        star, text = WILDCARD, text[len(WILDCARD):]
    if len(text) > 4 * max_length:  # before IDNA's work, and not echoed: far too long either way
        raise InvalidDomainName(f"name is longer than {max_length} characters.")
    try:
        name = idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise InvalidDomainName(f"{raw!r} is not a valid domain name.") from None
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise InvalidDomainName(f"{raw!r} is not a valid domain name.")
    if len(labels) < 2 or labels[-1].isdigit():
        raise InvalidDomainName(f"{raw!r} is not a domain name with a top-level domain, such as example.com.")
    name = star + name
    if len(name) > max_length:
        raise InvalidDomainName(f"{raw!r} is longer than {max_length} characters.")
    bare = name[len(star):]
    for own in (settings.inbound_domain, settings.bounce_domain):
        if bare == own or bare.endswith("." + own) or own.endswith("." + bare):
            raise InvalidDomainName(f"{name} is this service's own domain (or a parent of it) and cannot be "
                                    f"{what}.")
    return name


def verification_record_name(name: str) -> str:
    """Where the token of `name` is published; a wildcard's at its parent, which its owner controls."""
    bare = name[len(WILDCARD):] if name.startswith(WILDCARD) else name
    return f"{VERIFICATION_LABEL}.{bare}"


def token_record(name: str, token: str | None) -> DnsRecord:
    value = f"{VERIFICATION_PREFIX}{token}"
    return DnsRecord("TXT", verification_record_name(name), value, VERIFICATION, True)


def new_token() -> str:
    return secrets.token_hex(16)


def release_lapsed_claim(
    session: Session, settings: Settings, resource_id: str, name: str, kind: str, *,
    label: str, now: datetime,
) -> None:
    """Lock the name's row of `kind`; delete it when it is another add-on's lapsed claim, else
    raise DomainTaken (rolled back). `label` names the kind in texts ("sending domain")."""
    mine = select(Domain).where(Domain.name == name, Domain.kind == kind)
    existing = session.scalar(mine.with_for_update())
    if existing is None:
        return
    if existing.resource_id == resource_id:
        session.rollback()
        raise DomainTaken(f"{name} is already a{'n' if label[0] in 'aeiou' else ''} {label} of this add-on.")
    if existing.verified_at is not None or existing.created_at > now - UNVERIFIED_CLAIM_LIFETIME:
        session.rollback()
        raise DomainTaken(taken_text(name, label))
    released = existing.resource_id
    session.delete(existing)
    session.flush()
    why = f"released (unverified for {UNVERIFIED_CLAIM_LIFETIME.days} days, added by another add-on)"
    applog.record(session, settings, released, applog_lines.domain(label, name, why))
    log.info("unverified %s released domain=%s resource=%s", label, name, released)


def insert_claim(session: Session, domain: Domain, label: str) -> None:
    """Flush the new row; a concurrent add of the same name that committed first wins."""
    session.add(domain)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise DomainTaken(taken_text(domain.name, label)) from None


def remove_domain(session: Session, settings: Settings, domain: Domain, label: str) -> None:
    """Delete an add-on's domain of either kind, with its app log line; commits. The edges (inbound)
    and the delivery worker's signer (sending) stop using it from the commit on."""
    session.delete(domain)
    applog.record(session, settings, domain.resource_id, applog_lines.domain(label, domain.name, "deleted"))
    log.info("%s deleted domain=%s resource=%s", label, domain.name, domain.resource_id)
    session.commit()


def taken_text(name: str, label: str) -> str:
    return (f"{name} is a{'n' if label[0] in 'aeiou' else ''} {label} of another add-on. A claim that is not "
            f"verified within {UNVERIFIED_CLAIM_LIFETIME.days} days lapses.")


def lookup_txt_check(
    resolver: dns.resolver.Resolver, record: DnsRecord
) -> tuple[list[str] | None, RecordCheck | None]:
    """The TXT values at the record's name, or the failed check saying the look-up failed."""
    try:
        return lookup_txt(resolver, record.name), None
    except DnsError as exc:
        detail = f"Looking up TXT at {record.name} failed ({exc}); try again."
        return None, RecordCheck(record, LOOKUP_FAILED, detail)


def judge_token(record: DnsRecord, found: list[str]) -> tuple[str, str]:
    tokens = [value.strip() for value in found if value.strip().startswith(VERIFICATION_PREFIX)]
    if any(hmac.compare_digest(token.encode(), record.value.encode()) for token in tokens):
        return OK, f"The verification token at {record.name} is published."
    if tokens:
        return WRONG, f"The verification token at {record.name} is another one; publish {record.value}"
    return MISSING, f"No verification TXT record at {record.name}; publish {record.value}"
