"""Sending through the JSON API: `POST /api/v0.1/<username>/messages` (spec/outbound.md),
`GET /api/v0.1/<username>/messages` (the sent messages, newest first, paged as incoming_statuses)
and `GET /api/v0.1/<username>/messages/<id>`, each recipient's state and events.

The routes join the `api` blueprint so they share its Bearer authentication and its
`{"status", "error"}` answers; the rules themselves are in `provider.outbound` and
`services.sending`, which SMTP submission calls too, the reading in `services.outbound_history`.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from flask.typing import ResponseReturnValue

from ..errors import DomainError
from ..extensions import db
from ..outbound.errors import AccountClosed
from ..outbound.outgoing import from_api
from ..outbound.request import read_request
from ..services.accept_batcher import AcceptBatcher
from ..services.credentials import CredentialCache
from ..services.outbound_history import find_message, message_status, read_messages
from ..services.sending import AccountRef, Submission, new_message_id
from ..settings import Settings
from ..tasks import wake_delivery
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
    account = _sender(username)
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(422, "The request body must be a JSON object (Content-Type: application/json)")
    message_id = new_message_id()
    try:
        outgoing = from_api(read_request(body), str(message_id))
        message = _batcher().submit(Submission(account.id, outgoing, message_id)).result()
    except AccountClosed:
        # Deprovisioned since its key was remembered: what authenticating now would answer.
        _credentials.forget(username)
        raise ApiError(401, "Unauthorized") from None
    except DomainError as error:
        raise _refusal(error) from None
    return {
        "id": str(message.id),
        "from": message.sender,
        "to": message.to,
        "cc": message.cc,
        "subject": message.subject,
        "tags": message.tags,
        "test_mode": message.test_mode,
    }, 202


def _batcher() -> AcceptBatcher:
    batcher: AcceptBatcher = current_app.extensions[_BATCHER]
    return batcher


_BATCHER = "cloudmailin_accept_batcher"


def init_app(app: Flask) -> None:
    """The app's `AcceptBatcher` (its thread starts with the first message), on a pool of its own:
    a request waits for its message while holding whatever connection of the web pool it has."""
    settings: Settings = app.extensions["cloudmailin_settings"]
    app.extensions[_BATCHER] = AcceptBatcher.for_settings(settings, wake_delivery(settings.redis_url))


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
