"""Only SSO opens a session, a session sees one resource, forms need CSRF tokens, and every page
carries a Content-Security-Policy that allows no inline script."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider import create_app
from provider.models import Suppression
from provider.settings import Settings
from provider.views.dashboard_guard import SESSION_LIFETIME

from .conftest import Shop, csrf_token, dispose, sign_in

PAGES = ("/dashboard", "/dashboard/inbound", "/dashboard/outbound", "/dashboard/suppressions",
         "/dashboard/settings", "/dashboard/domains", "/dashboard/credentials")


def pages_of(shop: Shop) -> list[str]:
    return [*PAGES, f"/dashboard/inbound/{shop.inbound_id}", f"/dashboard/outbound/{shop.outbound_id}"]


def test_every_page_without_an_sso_session_is_refused(client: FlaskClient, shop: Shop) -> None:
    for path in pages_of(shop):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "sign in" in response.get_data(as_text=True)
    removal = client.post("/dashboard/suppressions/remove", data={"address": "gone@example.net"})
    assert removal.status_code == 403


def test_another_resource_s_messages_are_not_found(signed_in: FlaskClient, other_shop: Shop) -> None:
    for path in (f"/dashboard/inbound/{other_shop.inbound_id}",
                 f"/dashboard/outbound/{other_shop.outbound_id}",
                 "/dashboard/outbound/not-a-uuid", "/dashboard/inbound/99999999999"):
        response = signed_in.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "text/html"


def test_another_resource_s_lists_and_suppressions_stay_out_of_reach(
    signed_in: FlaskClient, db_session: Session, other_shop: Shop
) -> None:
    db_session.add(Suppression(resource_id=other_shop.account.resource_id, address="only@other.example",
                              reason="550 5.1.1"))
    db_session.commit()
    page = signed_in.get("/dashboard/suppressions").get_data(as_text=True)
    assert "only@other.example" not in page
    for address in ("only@other.example", "gone@example.net"):
        signed_in.post("/dashboard/suppressions/remove",
                       data={"address": address, "csrf_token": csrf_token(page)})
    db_session.expire_all()
    kept = db_session.scalars(select(Suppression.address).where(
        Suppression.resource_id == other_shop.account.resource_id)).all()
    assert sorted(kept) == ["gone@example.net", "only@other.example"]
    for path in ("/dashboard/inbound", "/dashboard/outbound"):
        shown = signed_in.get(path).get_data(as_text=True)
        assert f"/inbound/{other_shop.inbound_id}\"" not in shown
        assert str(other_shop.outbound_id) not in shown


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_a_form_post_without_the_session_s_csrf_token_is_refused_and_changes_nothing(
    signed_in: FlaskClient, db_session: Session, shop: Shop, token: str | None
) -> None:
    data = {"address": "gone@example.net"} | ({"csrf_token": token} if token else {})
    response = signed_in.post("/dashboard/suppressions/remove", data=data)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert db_session.get(Suppression, (shop.account.resource_id, "gone@example.net")) is not None


def test_a_csrf_token_of_another_session_is_refused(
    app, settings: Settings, signed_in: FlaskClient, other_shop: Shop
) -> None:
    other = app.test_client()
    sign_in(other, settings, other_shop.account.resource_id)
    foreign = csrf_token(other.get("/dashboard/suppressions").get_data(as_text=True))
    response = signed_in.post("/dashboard/suppressions/remove",
                              data={"address": "gone@example.net", "csrf_token": foreign})
    assert response.status_code == 400


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


def test_every_page_has_a_csp_without_inline_script_and_no_inline_script_in_it(
    client: FlaskClient, signed_in: FlaskClient, shop: Shop
) -> None:
    for path in [*pages_of(shop), "/dashboard/inbound/99999999999"]:
        response = signed_in.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
        assert "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        page = response.get_data(as_text=True)
        assert not INLINE_SCRIPT.search(page), path
        assert not INLINE_HANDLER.search(page), path
        assert " style=" not in page, path
    refused = client.application.test_client().get("/dashboard")
    assert "script-src 'self'" in refused.headers["Content-Security-Policy"]


def test_the_session_cookie_is_httponly_samesite_and_ends_with_its_absolute_lifetime(
    client: FlaskClient, settings: Settings, shop: Shop
) -> None:
    response = client.post("/sso/login", data=_sso(settings, shop))
    cookie = _session_cookie(response.headers.getlist("Set-Cookie"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    expires = re.search(r"Expires=([^;]+)", cookie)
    assert expires is not None
    lifetime = time.mktime(time.strptime(expires.group(1), "%a, %d %b %Y %H:%M:%S GMT")) - time.mktime(
        time.gmtime())
    assert SESSION_LIFETIME.total_seconds() - 120 < lifetime <= SESSION_LIFETIME.total_seconds() + 1
    # Using the dashboard does not push the end further away.
    assert not [c for c in client.get("/dashboard").headers.getlist("Set-Cookie") if c.startswith("session=")]


def test_the_session_cookie_is_secure_when_the_dashboard_is_served_over_https(
    settings: Settings, shop: Shop
) -> None:
    app = create_app(dataclasses.replace(settings, public_url="https://addon.example"))
    response = app.test_client().post("/sso/login", data=_sso(settings, shop))
    dispose(app)
    assert "Secure" in _session_cookie(response.headers.getlist("Set-Cookie"))


def test_a_session_older_than_its_lifetime_is_refused_however_recently_used(
    signed_in: FlaskClient,
) -> None:
    assert signed_in.get("/dashboard").status_code == 200
    with signed_in.session_transaction() as session:
        session["signed_in_at"] = int(time.time() - SESSION_LIFETIME.total_seconds() - 1)
    assert signed_in.get("/dashboard").status_code == 403
    with signed_in.session_transaction() as session:
        assert "resource_id" not in session


def test_a_session_without_a_sign_in_time_is_refused(signed_in: FlaskClient) -> None:
    with signed_in.session_transaction() as session:
        del session["signed_in_at"]
    assert signed_in.get("/dashboard").status_code == 403


def test_only_the_named_front_end_files_are_served(client: FlaskClient) -> None:
    for name, mimetype in (("pico.css", "text/css"), ("htmx.js", "text/javascript"),
                           ("uplot.js", "text/javascript"), ("uplot.css", "text/css")):
        response = client.get(f"/static/vendor/{name}")
        assert response.status_code == 200 and response.mimetype == mimetype, name
        response.close()
    for path in ("/static/vendor/package.json", "/static/package.json",
                 "/static/node_modules/htmx.org/package.json", "/static/vendor/..%2Fpackage.json"):
        assert client.get(path).status_code == 404, path
    assert client.get("/static/dashboard.js").status_code == 200


def _sso(settings: Settings, shop: Shop) -> dict[str, str]:
    from ..provider.sso_fields import fields

    return fields(shop.account.resource_id, settings.sso_salt)


def _session_cookie(cookies: list[str]) -> str:
    found = [c for c in cookies if c.startswith("session=")]
    assert len(found) == 1, cookies
    return found[0]


def _dashboard_forms(client: FlaskClient) -> list[str]:
    """Every POST route of the dashboard, with its path arguments filled in (the CSRF check runs
    before the view, so the values need not name anything)."""
    paths = []
    for rule in client.application.url_map.iter_rules():
        if rule.rule.startswith("/dashboard") and "POST" in (rule.methods or ()):
            path = rule.rule
            path = re.sub(r"<any\(([^,)]+)[^)]*\):[a-z_]+>", r"\1", path)  # the first choice
            path = re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "1", path)
            paths.append(path)
    return paths


def test_every_dashboard_form_refuses_a_post_without_its_csrf_token(signed_in: FlaskClient) -> None:
    forms = _dashboard_forms(signed_in)
    assert len(forms) >= 10  # suppressions, credentials, settings and domains each post
    for path in forms:
        response = signed_in.post(path, data={})
        assert response.status_code == 400, path
        assert response.mimetype == "text/html", path
