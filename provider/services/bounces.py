"""What a bounce that came back to a message's VERP address changes.

The remote side accepted the message (our recipient says `delivered`, or is still being tried)
and later reported on it with a DSN (`provider.outbound.dsn`). Per recipient of the report:

- `Action: failed` with a 5.x.x status: the recipient becomes `bounced`, with an event carrying
  the diagnostic; a hard bounce (`bounce_rules.is_hard_status`: 5.1.x) also puts the address on
  the resource's suppression list, exactly as a 5.1.x reply during our own attempt does;
- `Action: failed` with a 4.x.x status (the remote server gave up retrying): `retries_exhausted`;
- `Action: delayed`: only an event `deferred` (the webhook's `soft_bounce`), the state stays;
- `delivered`, `relayed`, `expanded`: nothing (we never ask for success notices).

Every event is left for the events webhook (`webhook_pending`). A report about a recipient that
is already bounced or given up changes nothing, so a bounce the remote server sends twice (its
first 250 got lost) records once. Recipients the report names that the message never had, and
recipients in test mode or suppressed (we never sent to them), are only counted as unmatched.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from ..models import OutboundEvent, OutboundRecipient, Suppression
from ..models.base import utcnow
from ..models.outbound import BOUNCED, DEFERRED, RETRIES_EXHAUSTED, SUPPRESSED, TEST
from ..outbound.bounce_rules import is_hard_status
from ..outbound.dsn import DeliveryReport, RecipientStatus

log = logging.getLogger(__name__)

MAX_MX_CHARS = 255
_NOT_SENT = (SUPPRESSED, TEST)
_GIVEN_UP = (BOUNCED, RETRIES_EXHAUSTED)


@dataclass
class BounceOutcome:
    known_message: bool = True
    bounced: list[str] = field(default_factory=list)
    exhausted: list[str] = field(default_factory=list)
    delayed: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{name}={len(items)}"
            for name, items in vars(self).items()
            if isinstance(items, list) and items
        ]
        return " ".join(parts) or "nothing"


def record_report(
    session: Session, message_id: uuid.UUID, report: DeliveryReport, *, now: datetime | None = None
) -> BounceOutcome:
    """Apply `report` to the recipients of message `message_id`; the caller commits."""
    now = now or utcnow()
    outcome = BounceOutcome()
    rows = session.scalars(
        select(OutboundRecipient)
        .where(OutboundRecipient.message_id == message_id)
        .order_by(OutboundRecipient.id)
        .with_for_update()
    ).all()
    if not rows:
        outcome.known_message = False
        return outcome
    by_address = {row.address.lower(): row for row in rows}
    for status in report.recipients:
        row = by_address.get(status.recipient.lower())
        if row is None and status.original_recipient:
            row = by_address.get(status.original_recipient.lower())
        if row is None or row.state in _NOT_SENT:
            outcome.unmatched.append(status.recipient)
            continue
        _apply(session, row, status, report, outcome, now)
    session.flush()
    return outcome


def _apply(
    session: Session,
    row: OutboundRecipient,
    status: RecipientStatus,
    report: DeliveryReport,
    outcome: BounceOutcome,
    now: datetime,
) -> None:
    if row.state in _GIVEN_UP or status.action not in ("failed", "delayed"):
        outcome.unchanged.append(row.address)
        return
    reply = _reply(status)
    mx = (status.remote_mta or report.reporting_mta or "")[:MAX_MX_CHARS] or None
    if status.action == "delayed":
        row.events.append(OutboundEvent(at=now, state=DEFERRED, reply=reply, mx=mx, webhook_pending=True))
        outcome.delayed.append(row.address)
        return
    state = RETRIES_EXHAUSTED if status.status.startswith("4.") else BOUNCED
    row.state = state
    row.next_attempt_at = None
    row.last_reply = reply
    row.updated_at = now
    row.events.append(OutboundEvent(at=now, state=state, reply=reply, mx=mx, webhook_pending=True))
    (outcome.exhausted if state == RETRIES_EXHAUSTED else outcome.bounced).append(row.address)
    if state == BOUNCED and is_hard_status(status.status, status.smtp_diagnostic):
        session.execute(
            pg_insert(Suppression)
            .values(resource_id=row.resource_id, address=row.address.lower(), reason=reply, created_at=now)
            .on_conflict_do_nothing()
        )
        outcome.suppressed.append(row.address)


def _reply(status: RecipientStatus) -> str:
    """What the event and the recipient show: the remote server's own words when the report
    gives them, with the report's status code in front when they do not already start so."""
    code = status.status or "no status"
    if status.diagnostic:
        return status.diagnostic if code in status.diagnostic[:16] else f"{code} {status.diagnostic}"
    return f"{code} (delivery status notification, Action: {status.action})"
