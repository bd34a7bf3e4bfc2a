"""The events webhook: where a resource's delivery events are POSTed, and what a POST holds.

A resource may set one URL (`PUT /api/v0.1/<user>/events_webhook`, or the dashboard); the rules
for it are the target URL's (`addresses.validate_target`), and like a target it may carry Basic
credentials, so it is stored encrypted (`resources.events_webhook_url_enc`) and shown masked.

Every recipient event the webhook reports is written with `webhook_pending` set (the delivery
store, `sending.accept` for suppressed recipients, `services.bounces`). The job
`workers.jobs.events_webhook` POSTs them, oldest first, `MAX_EVENTS_PER_POST` at a time:

    {"events": [{"kind": "bounce", "recipient": "x@example.com", "message_id": "<uuid>",
                 "details": {"event_id": 17, "at": "...Z", "state": "bounced",
                             "reply": "550 5.1.1 ...", "mx": "mx.example.com", "tags": [...]}}]}

signed as inbound POSTs are (`X-CloudMailin-Signature`, `provider.inbound.signature`) with the
signing secret of the resource's first address, so an app checks both kinds of POST one way.

Resources without a webhook (or deprovisioned): their pending events are cleared, not kept, by
the sweep (`clear_unwanted`). Events are the history of a message (the messages API shows them
whatever happens here); a webhook reports what happens from when it is set, not a backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from ..crypto import box_for
from ..models import Address, OutboundEvent, OutboundMessage, OutboundRecipient, Resource
from ..models.outbound import BOUNCED, DEFERRED, DELIVERED, RETRIES_EXHAUSTED, SUPPRESSED
from ..models.resource import DEPROVISIONED
from ..settings import Settings
from . import applog, applog_lines
from .addresses import display_target, validate_target

MAX_EVENTS_PER_POST = 100
KINDS = {
    DELIVERED: "delivery",
    DEFERRED: "soft_bounce",
    BOUNCED: "bounce",
    RETRIES_EXHAUSTED: "retries_exhausted",
    SUPPRESSED: "suppressed",
}
"""The webhook's kind for the recipient state an event records; events of other states (queued,
test) are never flagged for the webhook."""


def webhook_url(settings: Settings, resource: Resource) -> str | None:
    if resource.events_webhook_url_enc is None or not resource.active:
        return None
    return box_for(settings).decrypt(resource.events_webhook_url_enc)


def shown(settings: Settings, resource: Resource) -> dict[str, str | None]:
    """The setting as the API shows it: the URL with its password masked."""
    return {"url": display_target(webhook_url(settings, resource))}


def set_webhook(session: Session, settings: Settings, resource: Resource, url: object) -> None:
    """Validate and store `url` (raises `addresses.InvalidTarget` saying why not); the caller commits."""
    checked = validate_target(url)
    resource.events_webhook_url_enc = box_for(settings).encrypt(checked)
    applog.record(session, settings, resource.id, applog_lines.events_webhook("set"))


def clear_webhook(session: Session, settings: Settings, resource: Resource) -> None:
    if resource.events_webhook_url_enc is not None:
        resource.events_webhook_url_enc = None
        applog.record(session, settings, resource.id, applog_lines.events_webhook("removed"))


def signing_secret(settings: Settings, session: Session, resource_id: str) -> str | None:
    """The first address's signing secret (None: the resource has no address left)."""
    secret_enc = session.scalar(
        select(Address.signing_secret_enc)
        .where(Address.resource_id == resource_id)
        .order_by(Address.id)
        .limit(1)
    )
    return box_for(settings).decrypt(secret_enc) if secret_enc is not None else None


@dataclass(frozen=True)
class Batch:
    ids: list[int]
    body: dict[str, Any]


def pending_batch(session: Session, resource_id: str, limit: int = MAX_EVENTS_PER_POST) -> Batch | None:
    """The oldest pending events of the resource, locked (SKIP LOCKED: two jobs never take the
    same event) until the caller commits or rolls back; None when nothing is pending."""
    rows = session.execute(
        select(
            OutboundEvent.id, OutboundEvent.at, OutboundEvent.state, OutboundEvent.reply, OutboundEvent.mx,
            OutboundRecipient.address, OutboundRecipient.message_id, OutboundMessage.tags,
        )
        .join(OutboundRecipient, OutboundRecipient.id == OutboundEvent.recipient_id)
        .join(OutboundMessage, OutboundMessage.id == OutboundRecipient.message_id)
        .where(OutboundEvent.webhook_pending, OutboundRecipient.resource_id == resource_id)
        .order_by(OutboundEvent.id)
        .limit(limit)
        .with_for_update(of=OutboundEvent, skip_locked=True)
    ).all()
    if not rows:
        return None
    events = [
        {
            "kind": KINDS[row.state],
            "recipient": row.address,
            "message_id": str(row.message_id),
            "details": {
                "event_id": row.id,
                "at": row.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "state": row.state,
                "reply": row.reply,
                "mx": row.mx,
                "tags": list(row.tags),
            },
        }
        for row in rows
        if row.state in KINDS
    ]
    return Batch([row.id for row in rows], {"events": events})


def mark_sent(session: Session, ids: list[int]) -> None:
    session.execute(update(OutboundEvent).where(OutboundEvent.id.in_(ids)).values(webhook_pending=False))


_UNWANTED = text("""
UPDATE outbound_events AS e SET webhook_pending = false
FROM outbound_recipients AS r JOIN resources AS s ON s.id = r.resource_id
WHERE e.webhook_pending AND r.id = e.recipient_id
  AND (s.events_webhook_url_enc IS NULL OR s.state = :deprovisioned)
""")


def clear_unwanted(session: Session) -> int:
    """Clear the pending flag of events whose resource has no webhook; the caller commits."""
    result = session.execute(_UNWANTED, {"deprovisioned": DEPROVISIONED})
    return int(getattr(result, "rowcount", 0) or 0)


def resources_with_pending(session: Session, limit: int = 10_000) -> list[str]:
    """Resources that have a webhook and events waiting for it (the sweep's question)."""
    return list(session.scalars(
        select(OutboundRecipient.resource_id)
        .join(OutboundEvent, OutboundEvent.recipient_id == OutboundRecipient.id)
        .join(Resource, Resource.id == OutboundRecipient.resource_id)
        .where(
            OutboundEvent.webhook_pending,
            Resource.events_webhook_url_enc.is_not(None),
            Resource.active,
        )
        .group_by(OutboundRecipient.resource_id)
        .order_by(func.min(OutboundEvent.id))
        .limit(limit)
    ))
