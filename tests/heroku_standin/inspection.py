"""`/_standin/...`: what tests read back (add-ons with state and config, log lines, the calls
both ways) and long polls that wait on the stand-in's condition instead of sleeping."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response, jsonify, request

from tests.heroku_standin.context import Standin, standin
from tests.heroku_standin.errors import PlatformError, not_found
from tests.heroku_standin.state import Addon

blueprint = Blueprint("inspection", __name__, url_prefix="/_standin")
MAX_WAIT = 60.0


def addon_view(s: Standin, addon: Addon) -> dict[str, Any]:
    with s.store.lock:
        app = s.store.apps.get(addon.app_id)
        return {
            "id": addon.id,
            "name": addon.name,
            "app": app.name if app else None,
            "plan": addon.plan,
            "state": addon.state,
            "provider_id": addon.provider_id,
            "provision_message": addon.provision_message,
            "options": addon.options,
            "attachment_name": addon.attachment_name,
            "config": s.store.config_of(addon) if addon.id in s.store.addons else {},
            "grant_used": any(g.used for g in s.store.grants.values() if g.addon_id == addon.id),
            "access_tokens": sum(1 for t in s.store.tokens.values() if t.addon_id == addon.id),
        }


def _lookup(s: Standin, ident: str) -> Addon | None:
    with s.store.lock:
        return (
            s.store.find_addon(ident)
            or s.store.gone.get(ident)
            or next((a for a in s.store.gone.values() if a.name == ident), None)
        )


def _timeout() -> float:
    try:
        return min(float(request.args.get("timeout", "10")), MAX_WAIT)
    except ValueError as exc:
        raise PlatformError(400, "bad_request", "timeout must be a number") from exc


@blueprint.get("/addons")
def addons() -> Response:
    s = standin()
    with s.store.lock:
        every = [*s.store.addons.values(), *s.store.gone.values()]
        return jsonify([addon_view(s, a) for a in every])


@blueprint.get("/addons/<ident>")
def addon(ident: str) -> Response:
    s = standin()
    found = _lookup(s, ident)
    if found is None:
        raise not_found("add_on", "No such add-on, live or gone.")
    return jsonify(addon_view(s, found))


@blueprint.get("/addons/<ident>/wait")
def wait_for_state(ident: str) -> tuple[Response, int]:
    """`?state=provisioned&timeout=10`: 200 once the add-on is in that state, else 408."""
    s = standin()
    wanted = request.args.get("state", "provisioned")

    def reached() -> bool:
        found = _lookup(s, ident)
        return found is not None and found.state == wanted

    ok = s.store.wait_for(reached, _timeout())
    found = _lookup(s, ident)
    body = addon_view(s, found) if found else {"id": ident, "state": None}
    return jsonify(body), 200 if ok else 408


@blueprint.get("/apps/<name>")
def app(name: str) -> Response:
    s = standin()
    found = s.store.find_app(name)
    if found is None:
        raise not_found("app", "No such app.")
    with s.store.lock:
        return jsonify(
            {
                "id": found.id,
                "name": found.name,
                "region": found.region,
                "heroku_id": found.heroku_id,
                "config_vars": dict(found.config_vars),
            }
        )


@blueprint.get("/logs")
def logs() -> tuple[Response, int]:
    """`?addon=<id>&min=N&timeout=10`: the lines received (waits until at least `min`)."""
    s = standin()
    addon_id = request.args.get("addon")
    try:
        minimum = int(request.args.get("min", "0"))
    except ValueError as exc:
        raise PlatformError(400, "bad_request", "min must be an integer") from exc

    def lines() -> list[dict[str, Any]]:
        return [
            dataclasses.asdict(line)
            for line in s.store.log_lines
            if addon_id is None or line.addon_id == addon_id
        ]

    ok = s.store.wait_for(lambda: len(lines()) >= minimum, _timeout()) if minimum else True
    with s.store.lock:
        return jsonify(lines()), 200 if ok else 408


@blueprint.get("/calls")
def calls() -> Response:
    """`?direction=to_provider|to_platform&addon=<id>`."""
    s = standin()
    direction = request.args.get("direction")
    addon_id = request.args.get("addon")
    with s.store.lock:
        return jsonify(
            [
                dataclasses.asdict(c)
                for c in s.store.calls
                if (direction is None or c.direction == direction)
                and (addon_id is None or c.addon_id == addon_id)
            ]
        )
