"""Heroku single sign-on: `POST /sso/login` and the legacy `GET /heroku/resources/<id>?token=...`.

A successful login replaces whatever session the browser had with one bound to that single
resource; the dashboard reads the resource id from it and nothing else.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..models import Resource
from ..services.partner_requests import InvalidRequest, resource_id
from ..services.sso import SsoRefused, verify_login
from . import current_settings

bp = Blueprint("sso", __name__)

NAV_COOKIE = "heroku-nav-data"
HEROKU_APP_NAME = re.compile(r"[a-z][a-z0-9-]{1,99}")
SESSION_KEYS = ("resource_id", "email", "user_id", "app", "signed_in_at")


def refused(message: str, status: int) -> ResponseReturnValue:
    return render_template("refused.html", message=message), status


def _login(fields: Mapping[str, str]) -> ResponseReturnValue:
    settings = current_settings()
    try:
        login = verify_login(fields, settings.sso_salt, time.time())
    except SsoRefused as exc:
        return refused(str(exc), 403)
    try:
        wanted = resource_id(login.resource_id)
    except InvalidRequest:
        return refused("No CloudMailin add-on has that id.", 404)
    resource = db.session.get(Resource, wanted)
    if resource is None:
        return refused("No CloudMailin add-on has that id.", 404)
    if not resource.active:
        return refused("This CloudMailin add-on has been removed.", 403)
    # The app name is not covered by any token: keep it only when it looks like one (Heroku app
    # names are lower-case letters, digits and dashes), for display; never junk or a NUL.
    app = login.app if HEROKU_APP_NAME.fullmatch(login.app) else ""
    if app and resource.app_name != app:
        resource.app_name = app
        db.session.commit()
    session.clear()
    session.update(
        resource_id=resource.id, email=login.email, user_id=login.user_id, app=app,
        signed_in_at=int(time.time()),
    )
    # The cookie ends with the session's absolute lifetime (views/dashboard_guard.py).
    session.permanent = True
    response = redirect(url_for("dashboard.show"), code=302)
    if login.nav_data is not None:
        response.set_cookie(
            NAV_COOKIE,
            login.nav_data,
            secure=current_app.config["SESSION_COOKIE_SECURE"],  # as the session cookie (create_app)
            samesite="Lax",
        )
    return response


@bp.post("/sso/login")
def login() -> ResponseReturnValue:
    return _login(request.form.to_dict())


@bp.get("/heroku/resources/<raw_id>")
def legacy_login(raw_id: str) -> ResponseReturnValue:
    return _login({**request.args.to_dict(), "id": raw_id})
