"""The dashboard page reached through SSO."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

from .partner import TARGET, provision, send
from .sso_fields import APP, fields


def _signed_in(client, settings, **provision_fields):
    response = provision(client, settings, **provision_fields)
    client.post("/sso/login", data=fields(response.json["id"], settings.sso_salt))
    return response.json


def test_dashboard_without_a_session_is_403_with_a_page_saying_how_to_sign_in(client):
    response = client.get("/dashboard")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "Heroku" in response.get_data(as_text=True)


def test_following_the_sso_redirect_ends_on_the_dashboard_with_200(client, settings):
    resource = provision(client, settings).json
    response = client.post(
        "/sso/login", data=fields(resource["id"], settings.sso_salt), follow_redirects=True
    )
    assert response.status_code == 200
    assert response.request.path == "/dashboard"


def test_dashboard_has_the_heroku_header_naming_the_app_and_the_addon(client, settings):
    _signed_in(client, settings)
    page = client.get("/dashboard").get_data(as_text=True)
    header = re.search(r'<div id="heroku-header">(.*?)</div>', page, re.S)
    assert header is not None
    assert APP in header.group(1) and "CloudMailin" in header.group(1)


def test_dashboard_shows_plan_address_smtp_settings_and_target(client, settings):
    config = _signed_in(client, settings)["config"]
    page = html.unescape(client.get("/dashboard").get_data(as_text=True))
    smtp = urlsplit(config["CLOUDMAILIN_SMTP_URL"])
    assert "starter" in page
    assert config["CLOUDMAILIN_FORWARD_ADDRESS"] in page
    assert settings.smtp_public_host in page and str(settings.smtp_public_port) in page
    assert smtp.username in page
    assert TARGET in page


def test_dashboard_masks_the_smtp_key_and_a_target_password(client, settings):
    config = _signed_in(
        client, settings, options={"target": "https://me:hunter2@app.example.com/in"}
    )["config"]
    page = client.get("/dashboard").get_data(as_text=True)
    assert urlsplit(config["CLOUDMAILIN_SMTP_URL"]).password not in page
    assert "hunter2" not in page
    assert "app.example.com/in" in page


def test_dashboard_follows_plan_changes(client, settings):
    resource = _signed_in(client, settings)
    send(client, settings, "PUT", f"/heroku/resources/{resource['id']}", {"plan": "premium"})
    assert "premium" in client.get("/dashboard").get_data(as_text=True)


def test_dashboard_is_closed_once_the_addon_is_deprovisioned(client, settings):
    resource = _signed_in(client, settings)
    assert client.get("/dashboard").status_code == 200
    send(client, settings, "DELETE", f"/heroku/resources/{resource['id']}")
    assert client.get("/dashboard").status_code == 403


def test_dashboard_escapes_the_app_name(client, settings):
    resource = provision(client, settings).json
    form = fields(resource["id"], settings.sso_salt)
    form["app"] = "<script>alert(1)</script>"
    client.post("/sso/login", data=form)
    page = client.get("/dashboard").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page


def test_the_template_escapes_every_value_a_user_or_heroku_controls(app):
    """Rendered directly: the SSO view already drops odd app names, so only this can catch `|safe`."""
    from types import SimpleNamespace

    from flask import render_template

    from provider.plans import PLANS
    from provider.services.daily_counts import DailyCounts

    hostile = '<script>alert("x")</script>'
    with app.test_request_context("/dashboard"):
        page = render_template(
            "dashboard.html",
            addon_name="CloudMailin",
            app_name=hostile,
            email=hostile,
            resource=SimpleNamespace(plan="free", id="r", name="r", app_name=hostile),
            plan=PLANS["free"],
            forward_address=hostile,
            target=hostile,
            smtp_host="smtp.example",
            smtp_port=587,
            smtp_username=hostile,
            inbound_used=0,
            outbound_used=0,
            counts=DailyCounts([], {}),
            chart_days=30,
        )
    assert "<script>" not in page
    assert page.count(html.escape(hostile, quote=False).replace('"', "&#34;")) >= 5
