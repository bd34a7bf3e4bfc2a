"""`/_standin/faults`: make the next matching requests fail, to test how callers retry.

`POST /_standin/faults` `{"path": "/addons/<id>/config", "method": "PATCH", "status": 503,
"times": 2, "headers": {"Retry-After": "1"}, "body": {"id": "...", "message": "..."}}` answers the
next `times` requests to `path` (and `method`, if given) with that status instead of serving
them; `DELETE /_standin/faults` clears them.
Faulted requests still appear in `/_standin/calls` when their path has a recording blueprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from tests.heroku_standin.auth import json_object
from tests.heroku_standin.errors import PlatformError

EXTENSION = "heroku_standin_faults"

blueprint = Blueprint("faults", __name__, url_prefix="/_standin")


@dataclass
class Fault:
    path: str
    status: int
    times: int
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


def _faults(app: Flask) -> list[Fault]:
    found: list[Fault] = app.extensions.setdefault(EXTENSION, [])
    return found


@blueprint.before_app_request
def _maybe_fail() -> Response | None:
    if request.path.startswith("/_standin/"):
        return None
    faults = _faults(current_app)
    for fault in faults:
        if fault.path == request.path and fault.method in (None, request.method) and fault.times > 0:
            fault.times -= 1
            body = fault.body if fault.body is not None else {"id": "fault", "message": "Injected failure."}
            response = jsonify(body)
            response.status_code = fault.status
            response.headers.update(fault.headers)
            return response
    return None


@blueprint.post("/faults")
def add_fault() -> tuple[Response, int]:
    body = json_object()
    try:
        fault = Fault(
            path=str(body["path"]),
            status=int(body["status"]),
            times=int(body.get("times", 1)),
            method=str(body["method"]).upper() if body.get("method") else None,
            headers={str(k): str(v) for k, v in (body.get("headers") or {}).items()},
            body=body.get("body"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlatformError(400, "bad_request", f"A fault needs path and status: {exc}") from exc
    _faults(current_app).append(fault)
    return jsonify({"path": fault.path, "status": fault.status, "times": fault.times}), 201


@blueprint.delete("/faults")
def clear_faults() -> tuple[str, int]:
    _faults(current_app).clear()
    return "", 204


def inject_fault(
    standin_url: str,
    path: str,
    status: int,
    *,
    times: int = 1,
    method: str | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> None:
    """Client side, for tests: the next `times` requests to `path` answer `status`."""
    response = requests.post(
        f"{standin_url.rstrip('/')}/_standin/faults",
        json={
            "path": path,
            "status": status,
            "times": times,
            "method": method,
            "headers": headers or {},
            "body": body,
        },
        timeout=10,
    )
    response.raise_for_status()
