"""Where a recipient's mail goes: the RCPT-time decision of the SMTP edge.

A recipient reaches one of:

- a forward address, `<local_id>[+tag]@INBOUND_DOMAIN` (domain case-insensitive, the local id
  20 hex digits, matched case-insensitively because MTAs and people do change the case);
- `postmaster@INBOUND_DOMAIN`, which RFC 5321 section 4.5.1 requires every mail domain to
  accept. It goes to the operator: POSTed in the JSON format to POSTMASTER_TARGET_URL when that
  is set, otherwise accepted and written to the edge's log (sender, subject, Message-ID), since
  there is no resource to record it against;
- a custom domain of a resource (`_custom_domain_route`; see there).

Everything else is refused: an unknown, deprovisioned or target-less address with 550, any
domain not served with 550 5.7.1 (never relay). A forward address costs one indexed query
(addresses.local_id is unique), which also brings the resource's plan and this month's usage so
the edge can apply the plan's limits without a second round trip. The edge caches the routes
of forward addresses (smtp_edge/routes.py), keyed by `forward_local_id`, and drops them when
the database notifies a change.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ..errors import NoTarget, RelayDenied, UnknownRecipient
from ..models import Address, Resource, Usage
from ..plans import DEFAULT_PLAN, LARGEST_MESSAGE_BYTES, PLANS, Plan, UnknownPlan, plan_named
from ..settings import Settings
from .usage import month_start

log = logging.getLogger(__name__)

POSTMASTER = "postmaster"
_LOCAL_ID = re.compile(r"[0-9a-f]{20}")
TAG_SEPARATOR = "+"


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
    if domain == settings.inbound_domain:
        return _forward_address_route(session, settings, local, now=now)
    route = _custom_domain_route(session, settings, local, domain, now=now)
    if route is None:
        raise RelayDenied()
    return route


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
    return Route(
        key=f"address:{row.id}",
        target_url=row.target_url,
        format=row.format,
        resource_id=row.resource_id,
        address_id=row.id,
        signing_secret_enc=row.signing_secret_enc,
        size_as_string=row.size_as_string,
        plan=_plan(row.plan, row.resource_id),
        inbound_this_month=int(row.inbound or 0),
        log_drain=bool(row.log_drain),
    )


def postmaster_route(settings: Settings) -> Route:
    return Route(key=POSTMASTER, target_url=settings.postmaster_target_url or None, format="json")


def _custom_domain_route(
    session: Session, settings: Settings, local: str, domain: str, *, now: datetime
) -> Route | None:
    """The seam for custom inbound domains (Domain rows of kind "inbound", verified).

    None means "not served here". Custom domains are routed by the custom-domains feature, which
    fills in this one function (exact and one-level wildcard names, the local-part regex,
    verification, postmaster@ the domain); the edge and the rest of routing need no change.
    Until then no other domain is served, so the MX refuses them as relaying.
    """
    return None


def _plan(name: str, resource_id: str) -> Plan:
    try:
        return plan_named(name)
    except UnknownPlan:
        # A row the partner API would never write; limit it like the smallest plan, loudly.
        log.error(
            "resource %s has unknown plan %r; applying %r limits", resource_id, name, DEFAULT_PLAN
        )
        return PLANS[DEFAULT_PLAN]
