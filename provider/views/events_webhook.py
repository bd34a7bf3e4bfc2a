"""The events webhook setting through the API (on the `api` blueprint, as `views.messages`):

    GET    /api/v0.1/<username>/events_webhook    {"url": URL or null}, the password masked
    PUT    /api/v0.1/<username>/events_webhook    {"url": URL}: set or replace it (200, as GET)
    DELETE /api/v0.1/<username>/events_webhook    204, whether or not one was set

The URL follows the rules of an address's target (`addresses.validate_target`); a refusal is 422
with the same text. The rules and what is POSTed are in `services.events_webhook`.
"""

from __future__ import annotations

from flask import request
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..services.addresses import InvalidAddressSetting
from ..services.events_webhook import clear_webhook, set_webhook, shown
from ..services.partner_requests import InvalidRequest, json_object
from . import current_settings
from .api import ApiError, authenticated, bp


@bp.get("/<username>/events_webhook")
def show_events_webhook(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    return shown(current_settings(), resource)


@bp.put("/<username>/events_webhook")
def set_events_webhook(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    settings = current_settings()
    try:
        fields = json_object(request.get_data())
    except InvalidRequest as exc:
        example = '{"url": "https://example.com/events"}'
        raise ApiError(422, f"{exc} Send a JSON object such as {example}.") from None
    unknown = sorted(set(fields) - {"url"})
    if unknown:
        raise ApiError(422, f"Unknown field {unknown[0]!r}; the events webhook has only url.")
    session = db.session()
    try:
        set_webhook(session, settings, resource, fields.get("url"))
    except InvalidAddressSetting as exc:
        session.rollback()
        raise ApiError(422, str(exc)) from None
    session.commit()
    return shown(settings, resource)


@bp.delete("/<username>/events_webhook")
def remove_events_webhook(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    session = db.session()
    clear_webhook(session, current_settings(), resource)
    session.commit()
    return "", 204
