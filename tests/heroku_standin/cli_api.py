"""The platform endpoints the real `heroku` CLI calls for addons:create/upgrade/open/destroy/info,
addons and config (found by reading the CLI's source and logging its requests)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify

from tests.heroku_standin.auth import json_object, require_user
from tests.heroku_standin.context import Standin, base_url, standin
from tests.heroku_standin.errors import PlatformError, not_found
from tests.heroku_standin.representations import addon_json, attachment_json, plan_json
from tests.heroku_standin.state import Addon, App

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{1,29}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

blueprint = Blueprint("cli_api", __name__)


@blueprint.before_request
def _user_only() -> None:
    s = standin()
    require_user(s.config, s.store)


def find_app(s: Standin, ident: str) -> App:
    app = s.store.find_app(ident)
    if app is None and s.config.create_apps_on_demand and APP_NAME.match(ident) and not UUID.match(ident):
        app = s.store.add_app(ident)
    if app is None:
        raise not_found("app", "Couldn't find that app.")
    return app


def _matches(s: Standin, addon: Addon, ident: str) -> bool:
    plan_name = f"{s.config.addon_id}:{addon.plan}"
    return ident in (addon.id, addon.name, plan_name, s.config.addon_id) or (
        ident.upper() == addon.attachment_name
    )


def _addon_in_app(s: Standin, app: App, ident: str) -> Addon:
    matches = [a for a in s.store.addons_of(app.id) if _matches(s, a, ident)]
    if len(matches) != 1:
        raise not_found("add_on", f"Couldn't find that add-on ({ident}) on {app.name}.")
    return matches[0]


@blueprint.get("/account")
def account() -> Response:
    s = standin()
    return jsonify({"id": s.config.user_id, "email": s.config.user_email, "name": "Stand-in User"})


@blueprint.get("/apps/<app_ident>/config-vars")
def config_vars(app_ident: str) -> Response:
    s = standin()
    app = find_app(s, app_ident)
    with s.store.lock:
        return jsonify(dict(app.config_vars))


@blueprint.patch("/apps/<app_ident>/config-vars")
def set_config_vars(app_ident: str) -> Response:
    s = standin()
    app = find_app(s, app_ident)
    body = json_object()
    with s.store.lock:
        for name, value in body.items():
            if value is None:
                app.config_vars.pop(name, None)
            else:
                app.config_vars[name] = str(value)
        return jsonify(dict(app.config_vars))


@blueprint.get("/apps/<app_ident>/addons")
def list_addons(app_ident: str) -> Response:
    s = standin()
    app = find_app(s, app_ident)
    with s.store.lock:
        return jsonify([addon_json(s.store, s.config, a, base_url()) for a in s.store.addons_of(app.id)])


@blueprint.post("/apps/<app_ident>/addons")
def create_addon(app_ident: str) -> tuple[Response, int]:
    s = standin()
    app = find_app(s, app_ident)
    body = json_object()
    plan = body.get("plan")
    plan_name = plan.get("name") if isinstance(plan, dict) else plan
    options = body.get("config") or {}
    attachment = body.get("attachment")
    attachment_name = attachment.get("name") if isinstance(attachment, dict) else None
    if not isinstance(options, dict) or not (plan_name is None or isinstance(plan_name, str)):
        raise PlatformError(422, "invalid_params", "plan must be a name and config an object.")
    addon = s.lifecycle.create(app, plan_name, options, attachment_name, body.get("name"), base_url())
    with s.store.lock:
        return jsonify(addon_json(s.store, s.config, addon, base_url())), 201


@blueprint.get("/apps/<app_ident>/addons/<addon_ident>")
def get_addon(app_ident: str, addon_ident: str) -> Response:
    s = standin()
    addon = _addon_in_app(s, find_app(s, app_ident), addon_ident)
    with s.store.lock:
        return jsonify(addon_json(s.store, s.config, addon, base_url()))


@blueprint.patch("/apps/<app_ident>/addons/<addon_ident>")
def change_plan(app_ident: str, addon_ident: str) -> Response:
    s = standin()
    addon = _addon_in_app(s, find_app(s, app_ident), addon_ident)
    plan = json_object().get("plan")
    plan_name = plan.get("name") if isinstance(plan, dict) else plan
    if not isinstance(plan_name, str):
        raise PlatformError(422, "invalid_params", "plan.name is required.")
    s.lifecycle.change_plan(addon, plan_name)
    with s.store.lock:
        return jsonify(addon_json(s.store, s.config, addon, base_url()))


@blueprint.delete("/apps/<app_ident>/addons/<addon_ident>")
def destroy_addon(app_ident: str, addon_ident: str) -> Response:
    s = standin()
    addon = _addon_in_app(s, find_app(s, app_ident), addon_ident)
    with s.store.lock:
        shown = addon_json(s.store, s.config, addon, base_url())
    shown["state"] = s.lifecycle.destroy(addon)
    return jsonify(shown)


def _resolve(body: dict[str, Any], key: str) -> list[Addon]:
    s = standin()
    ident = body.get(key)
    if not isinstance(ident, str) or not ident:
        raise PlatformError(422, "invalid_params", f"{key} is required.")
    app_ident = body.get("app")
    if "::" in ident:
        app_ident, ident = ident.split("::", 1)
    if isinstance(app_ident, str) and app_ident:
        app = find_app(s, app_ident)
        return [a for a in s.store.addons_of(app.id) if _matches(s, a, ident)]
    with s.store.lock:
        return [a for a in s.store.addons.values() if ident in (a.id, a.name)]


@blueprint.post("/actions/addons/resolve")
def resolve_addons() -> Response:
    s = standin()
    found = _resolve(json_object(), "addon")
    if not found:
        raise not_found("add_on", "Couldn't find that add-on.")
    with s.store.lock:
        return jsonify([addon_json(s.store, s.config, a, base_url()) for a in found])


@blueprint.post("/actions/addon-attachments/resolve")
def resolve_attachments() -> Response:
    s = standin()
    found = _resolve(json_object(), "addon_attachment")
    if not found:
        raise not_found("add_on attachment", "Couldn't find that add-on attachment.")
    with s.store.lock:
        return jsonify([attachment_json(s.store, s.config, a, base_url()) for a in found])


@blueprint.get("/addons/<addon_ident>/addon-attachments")
def addon_attachments(addon_ident: str) -> Response:
    s = standin()
    addon = s.store.find_addon(addon_ident)
    if addon is None:
        raise not_found("add_on", "Couldn't find that add-on.")
    with s.store.lock:
        return jsonify([attachment_json(s.store, s.config, addon, base_url())])


@blueprint.get("/addon-services/<service>/plans")
def plans(service: str) -> Response:
    s = standin()
    if service != s.config.addon_id:
        raise not_found("addon_service", "Couldn't find that add-on service.")
    return jsonify([plan_json(s.config, p) for p in s.config.plans])


@blueprint.get("/addons")
def all_addons() -> Response:
    s = standin()
    with s.store.lock:
        return jsonify([addon_json(s.store, s.config, a, base_url()) for a in s.store.addons.values()])


@blueprint.get("/addon-attachments")
def all_attachments() -> Response:
    s = standin()
    with s.store.lock:
        return jsonify([attachment_json(s.store, s.config, a, base_url()) for a in s.store.addons.values()])


@blueprint.get("/apps/<app_ident>/addon-attachments")
def app_attachments(app_ident: str) -> Response:
    s = standin()
    app = find_app(s, app_ident)
    with s.store.lock:
        return jsonify([attachment_json(s.store, s.config, a, base_url()) for a in s.store.addons_of(app.id)])
