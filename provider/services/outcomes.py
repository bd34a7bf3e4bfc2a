"""What happened to an inbound message, in three words a person filters and charts by.

The history stores the target's HTTP code as text ("201") or a named status (`models.inbound`).
The spec's mapping to the SMTP answer (spec/inbound.md) decides the outcome: a 2xx was
**accepted**; a 4xx, or a refusal for size, quota or content, was **rejected** (a permanent 5xx to
the sender); everything else (5xx, a timeout, an unreachable target, our own or the store's
failure) was **deferred** (a temporary 4xx: the sender tries again). The same rule exists once,
as SQL, so the history filter and the overview's chart agree.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, case

from ..models import InboundMessage
from ..models.inbound_message import REJECTED_CONTENT, REJECTED_QUOTA, REJECTED_SIZE

ACCEPTED = "accepted"
REJECTED = "rejected"
DEFERRED = "deferred"
OUTCOMES = (ACCEPTED, REJECTED, DEFERRED)

REFUSALS = (REJECTED_SIZE, REJECTED_QUOTA, REJECTED_CONTENT)


def outcome_of(status: str) -> str:
    """The outcome of one stored status (for a page showing a row)."""
    if len(status) == 3 and status.isdigit():
        if status[0] == "2":
            return ACCEPTED
        if status[0] == "4":
            return REJECTED
        return DEFERRED
    return REJECTED if status in REFUSALS else DEFERRED


def outcome_column() -> ColumnElement[str]:
    """`outcome_of` as a SQL expression over inbound_messages.status."""
    status = InboundMessage.status
    return case(
        (status.like("2__"), ACCEPTED),
        (status.like("4__"), REJECTED),
        (status.in_(REFUSALS), REJECTED),
        else_=DEFERRED,
    )


def outcome_condition(outcome: str) -> ColumnElement[bool]:
    """Rows with this outcome, written so the status index can serve the 2xx and 4xx prefixes."""
    status = InboundMessage.status
    if outcome == ACCEPTED:
        return status.like("2__")
    if outcome == REJECTED:
        return status.like("4__") | status.in_(REFUSALS)
    return ~(status.like("2__") | status.like("4__") | status.in_(REFUSALS))
