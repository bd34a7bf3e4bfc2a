"""What every dashboard page shares: the SSO session, CSRF on forms, and the security headers.

Only `views/sso.py` opens a session, and it binds the session to one resource (its id, and when
it signed in). A dashboard blueprint calls `guard(bp)`: every request of it then needs a session
younger than `SESSION_LIFETIME` (an absolute lifetime: using the dashboard does not extend it),
finds that resource in `g.resource`, and every POST needs flask-wtf's CSRF token (a hidden
`csrf_token` field, or the `X-CSRFToken` header htmx sends). Pages read every object through
services that filter by `g.resource.id`, so another resource's ids answer 404 like unknown ones.

`init_app` adds the Content-Security-Policy (no inline script or style: scripts and styles only
from this origin) and the other browser headers to every HTML response of the app, the SSO and
error pages included.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, Response, g, session
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFProtect

from ..extensions import db
from ..models import Resource
from .sso import refused

SESSION_LIFETIME = timedelta(hours=8)
"""How long an SSO session lasts from the sign-in, however it is used; Heroku signs in again."""

ADDON_NAME = "CloudMailin"

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    app.config.update(
        # Checked only where `guard` asks (the dashboard's forms); the partner and customer APIs
        # authenticate every request themselves and are called by machines, not browsers.
        WTF_CSRF_CHECK_DEFAULT=False,
        # A token lives as long as the session it belongs to.
        WTF_CSRF_TIME_LIMIT=None,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    csrf.init_app(app)
    app.after_request(_security_headers)
    app.context_processor(_viewer)


def _security_headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def signed_in_resource() -> Resource | None:
    """The resource the SSO session is bound to, while the session is young and the add-on active."""
    wanted = session.get("resource_id")
    signed_in_at = session.get("signed_in_at")
    if not isinstance(wanted, str) or not isinstance(signed_in_at, int | float):
        return None
    if not 0 <= time.time() - signed_in_at < SESSION_LIFETIME.total_seconds():
        return None
    resource = db.session.get(Resource, wanted)
    if resource is None or not resource.active:
        return None
    return resource


def _require_session() -> ResponseReturnValue | None:
    resource = signed_in_resource()
    if resource is None:
        session.clear()
        return refused("Open CloudMailin from your app's page on Heroku to sign in.", 403)
    g.resource = resource
    csrf.protect()  # a no-op for GET and HEAD
    return None


def guard(bp: Blueprint) -> Blueprint:
    """Make every view of `bp` need the SSO session (and a CSRF token on POST)."""
    bp.before_request(_require_session)
    return bp


def _viewer() -> dict[str, Any]:
    """What the layout's Heroku header shows, for every page rendered with a dashboard session."""
    resource = getattr(g, "resource", None)
    if resource is None:
        return {}
    return {
        "addon_name": ADDON_NAME,
        "app_name": session.get("app") or resource.app_name or resource.name or resource.id,
        "email": session.get("email", ""),
    }
