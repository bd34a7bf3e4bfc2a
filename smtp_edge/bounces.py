"""Bounces arriving at the MX: delivery reports for the VERP addresses of outbound mail.

They are read here and recorded (`provider.services.bounces`), never POSTed to a target. The
answer is 250 once the report is recorded, and 250 as well for mail that carries no readable
report or names a message we do not hold (logged): refusing a bounce would make the bouncing
server send a bounce of its own to a null sender (RFC 5321 section 6.1, RFC 3464 section 2.4),
which must not happen and helps nobody. Only a failure on our side (the database is down)
answers 451 4.3.0, so the report comes again later instead of being lost.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from provider.outbound.dsn import DeliveryReport, NotADeliveryReport, parse_report
from provider.outbound.verp import message_id_of
from provider.services.bounces import BounceOutcome, record_report
from provider.services.routing import split_address

from .context import EdgeContext
from .replies import error_for

log = logging.getLogger(__name__)

BOUNCE_OK = "250 2.0.0 Delivery report received"


def _read(raw: bytes) -> DeliveryReport | str:
    try:
        return parse_report(raw)
    except NotADeliveryReport as exc:
        return str(exc)


def _record(session: Session, message_id: uuid.UUID, report: DeliveryReport) -> BounceOutcome:
    outcome = record_report(session, message_id, report)
    session.commit()
    return outcome


async def take_bounce(context: EdgeContext, sender: str, recipients: list[str], raw: bytes) -> str:
    """Record the report in `raw` against the message(s) `recipients` name; the SMTP reply."""
    message_ids = {
        found for found in (message_id_of(split_address(r)[0]) for r in recipients) if found is not None
    }
    report = await context.in_cpu(len(raw), _read, raw)
    if isinstance(report, str):
        log.warning(
            "bounce for %s from=%s size=%d accepted without a change: not a delivery report (%s)",
            ",".join(map(str, sorted(message_ids))), sender or "<>", len(raw), report,
        )
        return BOUNCE_OK
    for message_id in sorted(message_ids):
        try:
            outcome = await context.in_db(_record, message_id, report)
        except Exception as exc:
            return error_for(exc).smtp_reply
        if not outcome.known_message:
            log.warning("bounce for unknown message %s from=%s accepted and dropped",
                        message_id, sender or "<>")
        else:
            log.info("bounce for message %s from=%s: %s", message_id, sender or "<>", outcome.summary())
    return BOUNCE_OK
