"""The addresses API under /api/v0.1: read and change where and how an add-on's mail is POSTed.

    GET   /api/v0.1/<username>/addresses         the resource's forward addresses
    GET   /api/v0.1/<username>/addresses/<id>    one of them
    PATCH /api/v0.1/<username>/addresses/<id>    {"target": URL, "format": NAME, "size_as_string": BOOL,
                                                  "store": {...} or null}

Authentication and the error shape are those of the rest of the API (`api.authenticated`,
`{"status", "error"}`). The rules are the domain's (`services.address_settings`); this module
only turns HTTP into calls and answers into JSON. An address of another resource is answered
404 exactly as one that does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..models import Address
from ..services.address_settings import (
    UnknownAddress,
    change_address,
    resource_address,
    resource_addresses,
    settings_change,
)
from ..services.addresses import InvalidAddressSetting, display_target, forward_address
from ..services.partner_requests import InvalidRequest, json_object
from ..services.stores import StoresNotInPlan, shown_config
from . import current_settings
from .api import authenticated
from .errors import api_error

bp = Blueprint("addresses_api", __name__, url_prefix="/api/v0.1")


@bp.errorhandler(InvalidAddressSetting)
@bp.errorhandler(InvalidRequest)
def _refused(exc: ValueError) -> ResponseReturnValue:
    return api_error(422, str(exc))


@bp.errorhandler(StoresNotInPlan)
def _not_in_plan(exc: StoresNotInPlan) -> ResponseReturnValue:
    return api_error(403, str(exc))


@bp.errorhandler(UnknownAddress)
def _unknown(exc: UnknownAddress) -> ResponseReturnValue:
    return api_error(404, str(exc))


@bp.get("/<username>/addresses")
def list_addresses(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    addresses = resource_addresses(db.session(), resource.id)
    return jsonify(addresses=[_address(address) for address in addresses])


@bp.get("/<username>/addresses/<int:address_id>")
def show_address(username: str, address_id: int) -> ResponseReturnValue:
    resource = authenticated(username)
    return jsonify(_address(resource_address(db.session(), resource.id, address_id)))


@bp.patch("/<username>/addresses/<int:address_id>")
def update_address(username: str, address_id: int) -> ResponseReturnValue:
    resource = authenticated(username)
    try:
        fields = json_object(request.get_data())
    except InvalidRequest as exc:
        raise InvalidRequest(f"{exc} Send a JSON object such as {{\"format\": \"multipart\"}}.") from None
    change = settings_change(fields)
    address = change_address(db.session(), current_settings(), resource.id, address_id, change)
    return jsonify(_address(address))


def _address(address: Address) -> dict[str, Any]:
    return {
        "id": address.id,
        "address": forward_address(current_settings(), address.local_id),
        # Shown with its password masked, as everywhere else; a PATCH may leave it out to keep it.
        "target": display_target(address.target_url),
        "format": address.format,
        "size_as_string": address.size_as_string,
        # Credentials never shown back: the key id as a hint of its last characters, the secret masked.
        "store": shown_config(current_settings(), address),
        "created_at": _time(address.created_at),
        "updated_at": _time(address.updated_at),
    }


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
