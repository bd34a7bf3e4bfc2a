"""The partner API Heroku calls: `POST/PUT/DELETE /heroku/resources[/<id>]` (spec/heroku.md).

Basic auth is checked before anything else, so a wrong password learns nothing, not even whether
a resource exists. Domain errors become HTTP answers here and nowhere else (DESIGN.md decision 6).
The request does no network call beyond PostgreSQL and the local Redis: Heroku calls made on the
provider's behalf (grant exchange, async config) run in the workers.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from ..crypto import same_secret
from ..extensions import db
from ..jobs import queue_for
from ..plans import UnknownPlan
from ..services import provisioning
from ..services.addresses import InvalidAddressSetting
from ..services.partner_requests import (
    InvalidRequest,
    MalformedBody,
    json_object,
    plan_from,
    provision_request,
    resource_id,
)
from . import current_settings

log = logging.getLogger(__name__)

bp = Blueprint("heroku", __name__, url_prefix="/heroku")


def _message(status: int, message: str) -> tuple[Response, int]:
    return jsonify(message=message), status


PARTNER_PREFIX = "/heroku"
BROWSER_ENDPOINTS = frozenset({"sso.legacy_login"})
"""The one route under /heroku/ a browser opens (the legacy SSO GET), which carries a token instead."""


@bp.before_app_request
def _require_addon_credentials() -> ResponseReturnValue | None:
    """Every request under /heroku/, routed or not, proves the add-on credentials first: a wrong
    path or method without them is 401, not 404 or 405 (spec/heroku.md), so nothing about the
    API's shape is learnt without the password."""
    path = request.path
    if path != PARTNER_PREFIX and not path.startswith(PARTNER_PREFIX + "/"):
        return None
    if request.endpoint in BROWSER_ENDPOINTS and request.method in ("GET", "HEAD"):
        return None
    settings = current_settings()
    auth = request.authorization
    given_user = auth.username if auth is not None and auth.username else ""
    given_password = auth.password if auth is not None and auth.password else ""
    # Both comparisons always run; an unset password (a misconfigured deploy) matches nothing.
    user_ok = same_secret(given_user, settings.addon_id)
    password_ok = same_secret(given_password, settings.addon_password)
    if user_ok and password_ok and settings.addon_password:
        return None
    response, status = _message(401, "Authentication required: HTTP Basic with the add-on id and password.")
    response.headers["WWW-Authenticate"] = 'Basic realm="cloudmailin"'
    return response, status


@bp.errorhandler(MalformedBody)
def _malformed(exc: MalformedBody) -> ResponseReturnValue:
    return _message(400, str(exc))


@bp.errorhandler(InvalidRequest)
@bp.errorhandler(UnknownPlan)
@bp.errorhandler(InvalidAddressSetting)
@bp.errorhandler(provisioning.PlanChangeRefused)
def _unprocessable(exc: Exception) -> ResponseReturnValue:
    return _message(422, str(exc))


@bp.errorhandler(provisioning.UnknownResource)
def _unknown(exc: provisioning.UnknownResource) -> ResponseReturnValue:
    return _message(404, str(exc))


@bp.errorhandler(provisioning.ResourceBusy)
def _busy(exc: provisioning.ResourceBusy) -> ResponseReturnValue:
    response, status = _message(503, str(exc))
    response.headers["Retry-After"] = "2"
    return response, status


@bp.errorhandler(provisioning.ResourceGone)
def _gone(exc: provisioning.ResourceGone) -> ResponseReturnValue:
    return _message(410, str(exc))


def _path_id(raw: str) -> str:
    try:
        return resource_id(raw)
    except InvalidRequest:
        raise provisioning.UnknownResource(f"No CloudMailin add-on has the id {raw[:60]!r}.") from None


@bp.get("/ping")
def ping() -> ResponseReturnValue:
    """Checks the add-on credentials and nothing else: a baseline for bench/provision.py."""
    return jsonify(status="ok")


@bp.post("/resources")
def provision() -> ResponseReturnValue:
    settings = current_settings()
    wanted = provision_request(json_object(request.get_data(cache=False)))
    answer = provisioning.provision(db.session(), settings, wanted, queue_for(settings))
    if answer.config is None:
        return jsonify(id=answer.resource_id, message=answer.message), 202
    status = 201 if answer.created else 200
    return jsonify(id=answer.resource_id, config=answer.config, message=answer.message), status


@bp.put("/resources/<raw_id>")
def change_plan(raw_id: str) -> ResponseReturnValue:
    target = _path_id(raw_id)
    plan = plan_from(json_object(request.get_data(cache=False)))
    answer = provisioning.change_plan(db.session(), current_settings(), target, plan)
    return jsonify(message=answer.message), 200


@bp.delete("/resources/<raw_id>")
def deprovision(raw_id: str) -> ResponseReturnValue:
    target = _path_id(raw_id)
    try:
        provisioning.deprovision(db.session(), current_settings(), target)
    except provisioning.UnknownResource:
        # Never provisioned here, or deprovisioned and purged since: either way it is gone.
        return _message(410, f"No CloudMailin add-on has the id {target}; nothing to deprovision.")
    return Response(status=204, content_type="application/json")
