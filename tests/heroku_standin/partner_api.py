"""The platform API as a provider sees it: the OAuth token endpoint, the add-on's own endpoints
(`/addons/{uuid}`, its config, the provision/deprovision actions) and `GET /apps/{id}`.

Mutations need an access token issued for that very add-on; reads also take the user's key, as
on Heroku. Every call is recorded for the inspection API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from tests.heroku_standin import oauth
from tests.heroku_standin.auth import Principal, json_object, principal, require_platform_accept
from tests.heroku_standin.cli_api import find_app
from tests.heroku_standin.context import base_url, standin
from tests.heroku_standin.errors import PlatformError, not_found
from tests.heroku_standin.lifecycle import InvalidConfig
from tests.heroku_standin.representations import addon_json, app_json
from tests.heroku_standin.state import Addon, Call

blueprint = Blueprint("partner_api", __name__)


@blueprint.after_request
def _record(response: Response) -> Response:
    body: Any = request.get_json(force=True, silent=True)
    if request.path == "/oauth/token":
        body = {"grant_type": request.form.get("grant_type")}  # the rest are secrets
    addon_id = (request.view_args or {}).get("addon_id")
    answer = response.get_json(silent=True)
    if request.path == "/oauth/token" and isinstance(answer, dict):
        answer = {k: ("<redacted>" if k.endswith("_token") else v) for k, v in answer.items()}
    standin().store.record(
        Call(
            direction="to_platform",
            method=request.method,
            url=request.path,
            status=response.status_code,
            request_body=body,
            response_body=answer,
            headers={
                "Accept": request.headers.get("Accept", ""),
                "User-Agent": request.headers.get("User-Agent", ""),
                "Content-Type": request.headers.get("Content-Type", ""),
            },
            addon_id=addon_id,
        )
    )
    return response


@blueprint.post("/oauth/token")
def token() -> Response:
    s = standin()
    form = {k: v for k, v in request.form.items()}
    if "client_secret" not in form and request.authorization is not None:
        form["client_secret"] = request.authorization.password or ""
    return jsonify(oauth.exchange(s.store, s.config, form))


def _addon_for(addon_id: str, *, user_may: bool) -> Addon:
    s = standin()
    who: Principal = principal(s.config, s.store)
    require_platform_accept()
    addon = s.store.find_addon(addon_id)
    if addon is None:
        raise not_found("add_on", "Couldn't find that add-on.")
    if who.is_user and user_may:
        return addon
    if who.addon_id != addon.id:
        raise PlatformError(403, "forbidden", "This token was not issued for that add-on.")
    return addon


@blueprint.get("/addons/<addon_id>")
def get_addon(addon_id: str) -> Response:
    s = standin()
    addon = _addon_for(addon_id, user_may=True)
    with s.store.lock:
        return jsonify(addon_json(s.store, s.config, addon, base_url()))


def _config_list(config: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in config.items()]


@blueprint.get("/addons/<addon_id>/config")
def get_config(addon_id: str) -> Response:
    s = standin()
    addon = _addon_for(addon_id, user_may=True)
    return jsonify(_config_list(s.store.config_of(addon)))


@blueprint.patch("/addons/<addon_id>/config")
def update_config(addon_id: str) -> Response:
    s = standin()
    addon = _addon_for(addon_id, user_may=False)
    body = json_object()
    if "config" not in body:
        raise PlatformError(422, "invalid_params", 'The body must be {"config": [...]}.')
    try:
        config = s.lifecycle.apply_config(addon, body["config"])
    except InvalidConfig as exc:
        raise PlatformError(422, "invalid_params", str(exc)) from exc
    return jsonify(_config_list(config))


@blueprint.post("/addons/<addon_id>/actions/provision")
def provision_action(addon_id: str) -> Response:
    s = standin()
    addon = _addon_for(addon_id, user_may=False)
    s.lifecycle.mark_provisioned(addon)
    with s.store.lock:
        return jsonify(addon_json(s.store, s.config, addon, base_url()))


@blueprint.post("/addons/<addon_id>/actions/deprovision")
def deprovision_action(addon_id: str) -> Response:
    s = standin()
    addon = _addon_for(addon_id, user_may=False)
    with s.store.lock:
        shown = addon_json(s.store, s.config, addon, base_url())
    s.lifecycle.mark_deprovisioned(addon)
    shown["state"] = "deprovisioned"
    return jsonify(shown)


@blueprint.get("/apps/<app_ident>")
def get_app(app_ident: str) -> Response:
    s = standin()
    who = principal(s.config, s.store)
    if not who.is_user:
        require_platform_accept()
    app = find_app(s, app_ident) if who.is_user else s.store.find_app(app_ident)
    if app is None:
        raise not_found("app", "Couldn't find that app.")
    if not who.is_user:
        addon = s.store.find_addon(who.addon_id or "")
        if addon is None or addon.app_id != app.id:
            raise PlatformError(403, "forbidden", "This token was not issued for that app.")
    with s.store.lock:
        return jsonify(app_json(s.config, app, base_url()))
