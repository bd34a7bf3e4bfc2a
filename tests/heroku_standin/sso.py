"""The add-on's `web_url`: the page Heroku's dashboard (or `heroku addons:open`) opens, which
form-POSTs the SSO fields to the provider's `sso_url` with tokens computed at request time."""

from __future__ import annotations

import base64
import hashlib
import html
import json

from flask import Blueprint, Response, request

from tests.heroku_standin.context import standin
from tests.heroku_standin.errors import PlatformError, not_found

blueprint = Blueprint("sso", __name__)


def sso_fields(
    resource_id: str, legacy_id: str, salt: str, timestamp: int, user_id: str, email: str
) -> dict[str, str]:
    """The token fields Heroku signs with the manifest's `sso_salt` (spec/heroku.md, SSO)."""
    ts = str(timestamp)
    return {
        "resource_id": resource_id,
        "resource_token": hashlib.sha1(f"{resource_id}:{salt}:{ts}".encode()).hexdigest(),  # noqa: S324
        "user_scoped_resource_token": hashlib.sha256(
            f"{resource_id}:{salt}:{ts}:{user_id}:{email}".encode()
        ).hexdigest(),
        "id": legacy_id,
        "token": hashlib.sha1(f"{legacy_id}:{salt}:{ts}".encode()).hexdigest(),  # noqa: S324
        "timestamp": ts,
        "user_id": user_id,
        "email": email,
    }


@blueprint.get("/sso/addons/<addon_id>")
def launch(addon_id: str) -> Response:
    """`?offset=-600` shifts the timestamp, so tests can present a stale or future login."""
    s = standin()
    addon = s.store.find_addon(addon_id)
    if addon is None:
        raise not_found("add_on", "Couldn't find that add-on.")
    if addon.state != "provisioned":
        raise PlatformError(422, "invalid_params", f"{addon.name} is {addon.state}.")
    try:
        offset = int(request.args.get("offset", "0"))
    except ValueError as exc:
        raise PlatformError(400, "bad_request", "offset must be an integer") from exc
    with s.store.lock:
        app = s.store.apps[addon.app_id]
        now = int(s.store.clock().timestamp()) + offset
    fields = sso_fields(
        addon.id,
        addon.provider_id or addon.id,
        s.config.sso_salt,
        now,
        s.config.user_id,
        s.config.user_email,
    )
    if not s.config.sso_legacy_fields:
        del fields["id"], fields["token"]
    nav = {"addon": addon.name, "appname": app.name, "addon_plan": addon.plan}
    fields |= {
        "app": app.name,
        "context_app": app.name,
        "nav-data": base64.urlsafe_b64encode(json.dumps(nav).encode()).decode(),
    }
    inputs = "\n".join(
        f'      <input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in fields.items()
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
  <head><meta charset="utf-8"><title>Opening {html.escape(addon.name)}</title></head>
  <body>
    <p>Opening {html.escape(s.config.addon_display_name)} for {html.escape(app.name)}...</p>
    <form id="sso" method="POST" action="{html.escape(s.config.provider_sso_url)}">
{inputs}
    </form>
    <script>document.getElementById("sso").submit();</script>
  </body>
</html>
"""
    return Response(page, mimetype="text/html", headers={"Cache-Control": "no-store"})
