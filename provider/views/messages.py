"""Sending through the JSON API: `POST /api/v0.1/<username>/messages` (spec/outbound.md) and
`GET /api/v0.1/<username>/messages/<id>`, each recipient's state and events.

The routes join the `api` blueprint so they share its Bearer authentication and its
`{"status", "error"}` answers; the rules themselves are in `provider.outbound` and
`services.sending`, which SMTP submission calls too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..db import db
from ..errors import DomainError
from ..models import OutboundMessage, OutboundRecipient
from ..outbound.outgoing import from_api
from ..outbound.request import read_request
from ..services.sending import SendingPolicy, accept, new_message_id
from ..tasks import wake_delivery
from . import current_settings
from .api import ApiError, authenticated, bp


def _refusal(error: DomainError) -> ApiError:
    return ApiError(int(getattr(error, "http_status", 422)), error.text)


@bp.post("/<username>/messages")
def send_message(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(422, "The request body must be a JSON object (Content-Type: application/json)")
    settings = current_settings()
    message_id = new_message_id()
    session = db.session()
    try:
        outgoing = from_api(read_request(body), str(message_id))
        message = accept(
            session,
            SendingPolicy(verify_sending_domains=settings.sending_domain_verification),
            resource,
            outgoing,
            message_id,
            wake=wake_delivery(settings.redis_url),
        )
    except DomainError as error:
        session.rollback()
        raise _refusal(error) from None
    # Read before the commit, which expires the object: reading it after cost a SELECT of the
    # whole row (the message's bytes too) in a second transaction.
    answer = {
        "id": str(message.id),
        "from": message.sender,
        "to": message.to,
        "cc": message.cc,
        "subject": message.subject,
        "tags": message.tags,
        "test_mode": message.test_mode,
    }
    session.commit()
    return answer, 202


def _time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _recipient(row: OutboundRecipient) -> dict[str, Any]:
    return {
        "address": row.address,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": _time(row.next_attempt_at) if row.state in ("queued", "deferred") else None,
        "last_reply": row.last_reply,
        "events": [
            {"at": _time(event.at), "state": event.state, "reply": event.reply, "mx": event.mx}
            for event in row.events
        ],
    }


def message_status(message: OutboundMessage) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "created_at": _time(message.created_at),
        "source": message.source,
        "from": message.sender,
        "to": message.to,
        "cc": message.cc,
        "subject": message.subject,
        "message_id": message.message_id_header,
        "tags": message.tags,
        "priority": message.priority,
        "test_mode": message.test_mode,
        "size": message.size,
        "recipients": [_recipient(row) for row in message.recipients],
    }


@bp.get("/<username>/messages/<message_id>")
def show_message(username: str, message_id: str) -> ResponseReturnValue:
    resource = authenticated(username)
    try:
        wanted = uuid.UUID(message_id)
    except ValueError:
        raise ApiError(404, "No such message") from None
    message = db.session.scalar(
        select(OutboundMessage)
        .where(OutboundMessage.id == wanted, OutboundMessage.resource_id == resource.id)
        .options(selectinload(OutboundMessage.recipients).selectinload(OutboundRecipient.events))
    )
    if message is None:
        raise ApiError(404, "No such message")
    return message_status(message)
