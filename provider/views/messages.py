"""Sending through the JSON API: `POST /api/v0.1/<username>/messages` (spec/outbound.md),
`GET /api/v0.1/<username>/messages` (the sent messages, newest first, paged as incoming_statuses)
and `GET /api/v0.1/<username>/messages/<id>`, each recipient's state and events.

The routes join the `api` blueprint so they share its Bearer authentication and its
`{"status", "error"}` answers; the rules themselves are in `provider.outbound` and
`services.sending`, which SMTP submission calls too, the reading in `services.outbound_history`.
"""

from __future__ import annotations

from flask import request
from flask.typing import ResponseReturnValue

from ..errors import DomainError
from ..extensions import db
from ..outbound.errors import AccountClosed
from ..outbound.outgoing import from_api
from ..outbound.request import read_request
from ..services.credentials import CredentialCache
from ..services.outbound_history import find_message, message_status, read_messages
from ..services.sending import AccountRef, SendingPolicy, accept, commit_each_statement, new_message_id
from ..tasks import wake_delivery
from . import current_settings
from .api import ApiError, authenticated, bearer_key, bp, page_response


def _refusal(error: DomainError) -> ApiError:
    return ApiError(int(getattr(error, "http_status", 422)), error.text)


_credentials = CredentialCache()
"""This process's remembered API keys, for sending only: the hot path (see CredentialCache)."""


def _sender(username: str) -> AccountRef:
    """`api.authenticated` for sending: the same answer (401), with the key remembered."""
    key = bearer_key()
    resource_id = _credentials.resource_id(db.session(), username, key) if key else None
    if resource_id is None:
        raise ApiError(401, "Unauthorized")
    return AccountRef(resource_id)


@bp.post("/<username>/messages")
def send_message(username: str) -> ResponseReturnValue:
    session = db.session()
    commit_each_statement(session)
    account = _sender(username)
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(422, "The request body must be a JSON object (Content-Type: application/json)")
    settings = current_settings()
    message_id = new_message_id()
    try:
        outgoing = from_api(read_request(body), str(message_id))
        message = accept(
            session,
            SendingPolicy(verify_sending_domains=settings.sending_domain_verification),
            account,
            outgoing,
            message_id,
            wake=wake_delivery(settings.redis_url),
        )
    except AccountClosed:
        # Deprovisioned since its key was remembered: what authenticating now would answer.
        session.rollback()
        _credentials.forget(username)
        raise ApiError(401, "Unauthorized") from None
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


@bp.get("/<username>/messages")
def list_messages(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    page = read_messages(db.session(), resource.id, request.args)
    return page_response(page, "messages", ".list_messages", username=username)


@bp.get("/<username>/messages/<message_id>")
def show_message(username: str, message_id: str) -> ResponseReturnValue:
    resource = authenticated(username)
    message = find_message(db.session(), resource.id, message_id)
    if message is None:
        raise ApiError(404, "No such message")
    return message_status(message)
