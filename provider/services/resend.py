"""Re-sending a message from the history: `POST /api/v0.1/<username>/incoming_messages/<id>/resend`.

Only a message the address's message store kept can be sent again (the history keeps the object
key the SMTP edge wrote it under, `stored_message_key`); the rest of what the POST needs (the
envelope) is in the row. The request is checked here, in the web process, against the database
alone: the message must be this account's, must have been kept, and its address must still exist
with a target and a store. Then a new history row (`resend_queued`, `resent_from_id` pointing to
the first) is added, and the worker process fetches the message, renders it in the address's
current format and POSTs it to its current target (`workers/jobs/resend.py`), then fills the row in.

Why a job and not the POST inside the request: the edge's render and POST path is asyncio and
aiohttp (`smtp_edge/payloads.py`, `smtp_edge/poster.py`), and the web runs under gunicorn's gevent
worker, whose monkey-patched sockets and selectors an asyncio loop inside a greenlet would share
(an event loop blocking the whole gevent hub while it waits, in the worst case); a target may also
take the full TARGET_TIMEOUT (seconds), which a web request should not wait for. The RQ worker is a
plain process where `asyncio.run` is ordinary, so the job calls exactly the edge's functions.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..jobs import DEFAULT_QUEUE, RESEND_JOB, Job, QueueUnavailable, queue_for
from ..models import Address, InboundMessage
from ..models.base import utcnow
from ..models.inbound_message import LOCAL_ERROR, RESEND_QUEUED
from ..settings import Settings
from . import applog, applog_lines
from .addresses import display_target

log = logging.getLogger(__name__)

NOT_KEPT = (
    "This message was not kept: turn on the message store for the address to be able to re-send."
)


class NoSuchHistoryMessage(LookupError):
    """Not a message of this account's history (or already purged): 404."""


class ResendNotQueued(Exception):
    """Redis did not take the job: the new row says so (`local_error`) and is committed (503)."""

    def __init__(self, row: InboundMessage) -> None:
        super().__init__(row.id)
        self.row = row


class CannotResend(Exception):
    """The message cannot be sent again; `text` says why (409)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def queue_resend(session: Session, resource_id: str, message_id: int) -> InboundMessage:
    """The new history row for a re-send of `message_id` (flushed, so it has its id); the caller
    commits and then enqueues `RESEND_JOB` with the row's id."""
    original = session.execute(
        select(InboundMessage).where(
            InboundMessage.id == message_id, InboundMessage.resource_id == resource_id
        )
    ).scalar_one_or_none()
    if original is None:
        raise NoSuchHistoryMessage(message_id)
    if not original.stored_message_key:
        raise CannotResend(NOT_KEPT)
    address = session.get(Address, original.address_id) if original.address_id else None
    if address is None:
        raise CannotResend("The address this message was sent to no longer exists.")
    if not address.target_url:
        raise CannotResend("The address has no target URL to re-send the message to.")
    if not address.store_bucket or not address.store_secret_access_key_enc:
        raise CannotResend(
            "The address has no store now, so the kept message cannot be read: set the store "
            "again (same bucket) to re-send."
        )
    row = InboundMessage(
        resource_id=resource_id,
        address_id=address.id,
        received_at=utcnow(),
        envelope_from=original.envelope_from,
        envelope_to=original.envelope_to,
        recipients=list(original.recipients),
        message_id=original.message_id,
        subject=original.subject,
        size=original.size,
        spf_result=original.spf_result,
        tls=original.tls,
        remote_ip=original.remote_ip,
        target_url=display_target(address.target_url),
        status=RESEND_QUEUED,
        smtp_reply="",
        stored_message_key=original.stored_message_key,
        helo_domain=original.helo_domain,
        resent_from_id=original.id,
    )
    session.add(row)
    session.flush()
    return row


def request_resend(
    session: Session, settings: Settings, resource_id: str, message_id: int, where: str
) -> InboundMessage:
    """What the API and the dashboard do to re-send: `queue_resend`, an app log line saying from
    `where` it was asked, commit, then enqueue `RESEND_JOB`. Domain refusals leave the session
    rolled back; `ResendNotQueued` when Redis does not take the job (the row, committed, says so)."""
    try:
        row = queue_resend(session, resource_id, message_id)
    except (NoSuchHistoryMessage, CannotResend):
        session.rollback()
        raise
    applog.record(session, settings, resource_id, applog_lines.resend_queued(message_id, where))
    session.commit()
    try:
        queue_for(settings).enqueue(Job(RESEND_JOB, (row.id,), queue=DEFAULT_QUEUE))
    except QueueUnavailable as exc:
        log.warning("could not queue the re-send of history row %s: %s", message_id, exc)
        row.status = LOCAL_ERROR
        row.response_body = "The re-send could not be queued; try again."
        session.commit()
        raise ResendNotQueued(row) from None
    return row
