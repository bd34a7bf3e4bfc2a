"""Where a recipient's mail goes: the RCPT-time decision of the SMTP edge.

A recipient reaches one of:

- a forward address, `<local_id>[+tag]@INBOUND_DOMAIN` (domain case-insensitive, the local id
  20 hex digits, matched case-insensitively because MTAs and people do change the case);
- `postmaster@INBOUND_DOMAIN`, which RFC 5321 section 4.5.1 requires every mail domain to
  accept. It goes to the operator: POSTed in the JSON format to POSTMASTER_TARGET_URL when that
  is set, otherwise accepted and written to the edge's log (sender, subject, Message-ID), since
  there is no resource to record it against;
- a verified custom domain of a resource (`custom_domain`): any local part, or those its
  pattern takes, and postmaster@ the domain, all to the resource's address (one POST with its
  forward address's recipients, as they share the route's key);
- a bounce address, `bounces+<message uuid>@BOUNCE_DOMAIN` (the VERP envelope sender of outbound
  mail): its route (`BOUNCES`) is not POSTed anywhere, the edge reads the delivery report in it
  (smtp_edge/bounces.py). Any other local part there is refused with 550 5.1.1, except
  postmaster@, which RFC 5321 requires. When BOUNCE_DOMAIN is INBOUND_DOMAIN itself, only the
  `bounces+` local parts are taken as bounces and the rest routes as forward addresses.

Everything else is refused: an unknown, deprovisioned or target-less address, a custom domain
not verified (yet) or a local part its pattern does not take with 550 5.1.1, any domain nobody
claims with 550 5.7.1 (never relay). A forward address costs one indexed query
(addresses.local_id is unique), which also brings the resource's plan and this month's usage so
the edge can apply the plan's limits without a second round trip. The edge caches the routes
of forward addresses (smtp_edge/routes.py), keyed by `forward_local_id`, and those of custom
domains (`DomainRoute`, by domain), and drops them when the database notifies a change.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import idna
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ..errors import NoTarget, RelayDenied, UnknownRecipient
from ..models import Address, Domain, Resource, Usage
from ..models.domain import INBOUND
from ..outbound.verp import LOCAL_PREFIX, message_id_of
from ..plans import DEFAULT_PLAN, LARGEST_MESSAGE_BYTES, PLANS, Plan, UnknownPlan, plan_named
from ..settings import Settings
from .local_parts import matches
from .stores import RouteStore
from .usage import month_start

log = logging.getLogger(__name__)

POSTMASTER = "postmaster"
_LOCAL_ID = re.compile(r"[0-9a-f]{20}")
TAG_SEPARATOR = "+"
BOUNCES = "bounces"
"""The key of the route every bounce address shares (one transaction may carry several)."""


@dataclass(frozen=True)
class Route:
    """One target. Recipients of one transaction share a POST only when their `key`s are equal."""

    key: str
    target_url: str | None  # None: accepted and only logged (postmaster without a target)
    format: str
    resource_id: str | None = None
    address_id: int | None = None
    signing_secret_enc: bytes | None = None
    size_as_string: bool = False
    plan: Plan | None = None  # None: no plan applies (operator mail)
    inbound_this_month: int = 0
    log_drain: bool = False  # the resource has a log_input_url: deliveries go to the app's log
    store: RouteStore | None = None  # attachments and/or the message go there before the POST

    @property
    def max_message_bytes(self) -> int:
        return self.plan.max_message_bytes if self.plan else LARGEST_MESSAGE_BYTES


def split_address(recipient: str) -> tuple[str, str]:
    """(local part, domain) with the domain lower-cased and without a final dot."""
    local, at, domain = recipient.rpartition("@")
    if not at:
        return recipient, ""
    return local, domain.rstrip(".").lower()


def forward_local_id(settings: Settings, recipient: str) -> str | None:
    """The local id a forward address routes by (tag and case dropped), None for any other
    recipient: what a route cache keys on, so every spelling of an address shares one entry."""
    local, domain = split_address(recipient)
    if domain != settings.inbound_domain:
        return None
    local_id = local.split(TAG_SEPARATOR, 1)[0].lower()
    return local_id if _LOCAL_ID.fullmatch(local_id) else None


def route_recipient(
    session: Session, settings: Settings, recipient: str, *, now: datetime
) -> Route:
    """The route for `recipient`, or a `PermanentError` saying why there is none."""
    local, domain = split_address(recipient)
    if not local or not domain:
        raise UnknownRecipient()
    if domain == settings.bounce_domain and (
        domain != settings.inbound_domain or local.lower().startswith(LOCAL_PREFIX)
    ):
        return _bounce_route(settings, local)
    if domain == settings.inbound_domain:
        return _forward_address_route(session, settings, local, now=now)
    route = _custom_domain_route(session, settings, local, domain, now=now)
    if route is None:
        raise RelayDenied()
    return route


def address_route(session: Session, settings: Settings, local_id: str, *, now: datetime) -> Route:
    """The route mail to the address `local_id` takes now: what a re-send POSTs to, the same way."""
    return _forward_address_route(session, settings, local_id, now=now)


def _forward_address_route(
    session: Session, settings: Settings, local: str, *, now: datetime
) -> Route:
    if local.lower() == POSTMASTER:
        return postmaster_route(settings)
    local_id = local.split(TAG_SEPARATOR, 1)[0].lower()
    if not _LOCAL_ID.fullmatch(local_id):
        raise UnknownRecipient()
    row = session.execute(
        select(
            *ROUTE_COLUMNS,
        )
        .join(Resource, Resource.id == Address.resource_id)
        .outerjoin(
            Usage,
            and_(Usage.resource_id == Address.resource_id, Usage.period == month_start(now)),
        )
        .where(Address.local_id == local_id)
    ).one_or_none()
    if row is None or not row.active:
        raise UnknownRecipient()
    if not row.target_url:
        raise NoTarget()
    return _address_route(row)


ROUTE_COLUMNS = (
    Address.id,
    Address.resource_id,
    Address.target_url,
    Address.format,
    Address.signing_secret_enc,
    Address.size_as_string,
    Resource.plan,
    Resource.active.label("active"),
    Resource.log_input_url_enc.is_not(None).label("log_drain"),
    Usage.inbound,
    Address.store_bucket,
    Address.store_prefix,
    Address.store_region,
    Address.store_endpoint_url,
    Address.store_access_key_id_enc,
    Address.store_secret_access_key_enc,
    Address.store_attachments,
    Address.store_messages,
)
"""What a route is made of, for a forward address and a custom domain's address alike."""


def _address_route(row: Any) -> Route:
    """The route of a row of ROUTE_COLUMNS (active, with a target: the callers checked)."""
    plan = _plan(row.plan, row.resource_id)
    return Route(
        key=f"address:{row.id}",
        target_url=row.target_url,
        format=row.format,
        resource_id=row.resource_id,
        address_id=row.id,
        signing_secret_enc=row.signing_secret_enc,
        size_as_string=row.size_as_string,
        plan=plan,
        inbound_this_month=int(row.inbound or 0),
        log_drain=bool(row.log_drain),
        store=RouteStore.of_row(row) if plan.stores else None,  # a downgraded plan: inline again
    )


def _bounce_route(settings: Settings, local: str) -> Route:
    if local.lower() == POSTMASTER:
        return postmaster_route(settings)
    if message_id_of(local) is None:
        raise UnknownRecipient()
    return Route(key=BOUNCES, target_url=None, format="json")


def postmaster_route(settings: Settings) -> Route:
    return Route(key=POSTMASTER, target_url=settings.postmaster_target_url or None, format="json")


def _custom_domain_route(
    session: Session, settings: Settings, local: str, domain: str, *, now: datetime
) -> Route | None:
    """A recipient on a custom inbound domain (`services.inbound_domains`); None: not served."""
    served = custom_domain(session, settings, domain, now=now)
    return None if served is None else served.route_for(local)


@dataclass(frozen=True)
class DomainRoute:
    """A served custom domain: the route of its address and which local parts it takes."""

    name: str
    """The row's name: the domain itself, or the `*.<parent>` it matched."""
    route: Route
    local_part_regex: str | None
    local_id: str
    """The forward address's, whose changes (migration 0002) change this route too."""

    def route_for(self, local: str) -> Route:
        return domain_local_part(self.route, self.local_part_regex, local)


def domain_local_part(route: Route, local_part_regex: str | None, local: str) -> Route:
    """`route` when a custom domain takes `local` (every local part without a pattern, and
    postmaster@ always: RFC 5321 section 4.5.1, the domain's owner gets it), else 550 5.1.1."""
    if local_part_regex is None or local.lower() == POSTMASTER or matches(local_part_regex, local):
        return route
    raise UnknownRecipient()


def custom_domain_of(settings: Settings, recipient: str) -> tuple[str, str] | None:
    """(local part, domain) when `route_recipient` would look the domain up as a custom one."""
    local, domain = split_address(recipient)
    if not local or not domain or domain in (settings.inbound_domain, settings.bounce_domain):
        return None
    return local, domain


def custom_domain(
    session: Session, settings: Settings, domain: str, *, now: datetime
) -> DomainRoute | None:
    """The verified inbound domain serving `domain`: its own row, else the `*.<parent>` one
    (exactly one level: `*.example.com` serves `a.example.com`, neither `example.com` nor
    `b.a.example.com`). None when nobody claims it (RelayDenied); a claim not verified, or of an
    add-on that is no longer active, is 550 5.1.1 like an unknown address."""
    name = _a_labels(domain)
    if "*" in name:
        return None  # a literal `*.` recipient domain is not the wildcard's to serve
    parent = name.split(".", 1)[1] if "." in name else ""
    names = [name, f"*.{parent}"] if "." in parent else [name]
    rows = session.execute(
        select(
            Domain.name,
            Domain.verified_at,
            Domain.local_part_regex,
            Address.local_id,
            *ROUTE_COLUMNS,
        )
        .join(Address, Address.id == Domain.address_id)
        .join(Resource, Resource.id == Domain.resource_id)
        .outerjoin(Usage, and_(Usage.resource_id == Domain.resource_id, Usage.period == month_start(now)))
        .where(Domain.kind == INBOUND, Domain.name.in_(names))
    ).all()
    if not rows:
        return None
    served = [row for row in rows if row.verified_at is not None and row.active]
    served.sort(key=lambda row: row.name != name)  # its own name before the wildcard
    if not served:
        raise UnknownRecipient()
    row = served[0]
    if not row.target_url:
        raise NoTarget()
    return DomainRoute(row.name, _address_route(row), row.local_part_regex, row.local_id)


def _a_labels(domain: str) -> str:
    """Domains are stored as IDNA A-labels; a recipient may spell one in Unicode (SMTPUTF8)."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return domain


def _plan(name: str, resource_id: str) -> Plan:
    try:
        return plan_named(name)
    except UnknownPlan:
        # A row the partner API would never write; limit it like the smallest plan, loudly.
        log.error(
            "resource %s has unknown plan %r; applying %r limits", resource_id, name, DEFAULT_PLAN
        )
        return PLANS[DEFAULT_PLAN]
