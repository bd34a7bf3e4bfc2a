"""Heroku single sign-on: `POST /sso/login` and the legacy GET (spec/heroku.md, SSO)."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

import pytest

from provider import create_app
from provider.models import Resource
from provider.services.sso import SsoRefused, resource_token, verify_login

from .partner import provision, send
from .sso_fields import APP, EMAIL, USER_ID, fields, nav_data, now


@pytest.fixture
def resource_id(client, settings):
    return provision(client, settings).json["id"]


def _login(client, form):
    return client.post("/sso/login", data=form)


def _session(client):
    with client.session_transaction() as session:
        return dict(session)


def test_the_spec_test_vector():
    assert resource_token("123", "2f97bfa52ca102f8874716e2eb1d3b4920ad0be4", "1267597772") == (
        "bb466eb1d6bc345d11072c3cd25c311f21be130d"
    )


@pytest.mark.parametrize(
    "kinds", [("user",), ("resource",), ("legacy",), ("user", "resource", "legacy")]
)
def test_each_token_kind_logs_in_and_redirects_to_the_dashboard(
    client, settings, resource_id, kinds
):
    form = fields(resource_id, settings.sso_salt, kinds=kinds)
    if kinds == ("legacy",):
        del form["resource_id"]
    response = _login(client, form)
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith("/dashboard")
    session = _session(client)
    assert session["resource_id"] == resource_id
    assert (session["email"], session["user_id"], session["app"]) == (EMAIL, USER_ID, APP)


def test_login_sets_the_nav_data_cookie_verbatim(client, settings, resource_id):
    response = _login(client, fields(resource_id, settings.sso_salt))
    cookie = client.get_cookie("heroku-nav-data")
    assert cookie is not None and cookie.value == nav_data()
    assert any(
        value.startswith(f"heroku-nav-data={nav_data()};")
        for value in response.headers.getlist("Set-Cookie")
    )


@pytest.mark.parametrize("public_url", ["https://addon.example", "http://localhost:5000"])
def test_the_nav_cookie_is_secure_exactly_when_the_session_cookie_is(settings, resource_id, public_url):
    client = create_app(dataclasses.replace(settings, public_url=public_url)).test_client()
    response = _login(client, fields(resource_id, settings.sso_salt))
    cookies = {value.split("=", 1)[0]: value for value in response.headers.getlist("Set-Cookie")}
    secure = public_url.startswith("https://")
    assert ("; Secure" in cookies["heroku-nav-data"]) is ("; Secure" in cookies["session"]) is secure


def test_login_records_the_app_name_on_the_resource(client, settings, resource_id, db_session):
    _login(client, fields(resource_id, settings.sso_salt))
    assert db_session.get(Resource, resource_id).app_name == APP


def test_legacy_get_form_logs_in(client, settings, resource_id):
    form = fields(resource_id, settings.sso_salt, kinds=("legacy",))
    query = {k: form[k] for k in ("token", "timestamp", "nav-data", "email", "app")}
    response = client.get(f"/heroku/resources/{resource_id}?{urlencode(query)}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/dashboard")
    assert _session(client)["resource_id"] == resource_id
    assert client.get_cookie("heroku-nav-data").value == form["nav-data"]


def test_legacy_get_with_a_wrong_token_is_403(client, settings, resource_id):
    query = urlencode({"token": "0" * 40, "timestamp": str(now())})
    assert client.get(f"/heroku/resources/{resource_id}?{query}").status_code == 403


def _assert_refused(response, client, status=403):
    assert response.status_code == status
    assert "resource_id" not in _session(client)
    assert client.get_cookie("heroku-nav-data") is None


def test_missing_token_is_403(client, settings, resource_id):
    form = fields(resource_id, settings.sso_salt, kinds=())
    _assert_refused(_login(client, form), client)


@pytest.mark.parametrize("kind", ["user", "resource", "legacy"])
def test_wrong_salt_is_403_for_every_token_kind(client, settings, resource_id, kind):
    form = fields(resource_id, "not-the-salt", kinds=(kind,))
    _assert_refused(_login(client, form), client)


def test_the_strongest_token_present_decides(client, settings, resource_id):
    """A correct sha1 token does not rescue a wrong user-scoped token (another user's email)."""
    form = fields(resource_id, settings.sso_salt)
    form["email"] = "someone-else@example.com"
    _assert_refused(_login(client, form), client)


def test_a_token_for_another_resource_is_403(client, settings, resource_id):
    other = provision(client, settings).json["id"]
    form = fields(other, settings.sso_salt)
    form["resource_id"] = resource_id
    _assert_refused(_login(client, form), client)


def test_a_timestamp_older_than_five_minutes_is_403(client, settings, resource_id):
    form = fields(resource_id, settings.sso_salt, timestamp=now() - 6 * 60)
    _assert_refused(_login(client, form), client)


def test_a_timestamp_four_minutes_old_is_accepted(client, settings, resource_id):
    form = fields(resource_id, settings.sso_salt, timestamp=now() - 4 * 60)
    assert _login(client, form).status_code == 302


def test_a_timestamp_in_the_future_beyond_the_skew_is_403(client, settings, resource_id):
    form = fields(resource_id, settings.sso_salt, timestamp=now() + 5 * 60)
    _assert_refused(_login(client, form), client)


def test_a_timestamp_that_is_not_a_number_is_403(client, settings, resource_id):
    form = fields(resource_id, settings.sso_salt)
    form["timestamp"] = "yesterday"
    _assert_refused(_login(client, form), client)


def test_a_deprovisioned_resource_is_refused(client, settings, resource_id):
    send(client, settings, "DELETE", f"/heroku/resources/{resource_id}")
    _assert_refused(_login(client, fields(resource_id, settings.sso_salt)), client)


def test_an_unknown_resource_is_404(client, settings):
    form = fields("01234567-89ab-cdef-0123-456789abcdef", settings.sso_salt)
    _assert_refused(_login(client, form), client, status=404)


def test_a_server_without_an_sso_salt_accepts_no_login(settings, resource_id):
    client = create_app(dataclasses.replace(settings, sso_salt="")).test_client()
    _assert_refused(_login(client, fields(resource_id, "")), client)


def test_a_new_login_replaces_the_previous_session(client, settings, resource_id):
    other = provision(client, settings).json["id"]
    _login(client, fields(resource_id, settings.sso_salt))
    _login(client, fields(other, settings.sso_salt))
    assert _session(client)["resource_id"] == other


def test_verify_accepts_upper_case_hex_tokens(settings):
    form = fields("r1", settings.sso_salt, kinds=("resource",))
    form["resource_token"] = form["resource_token"].upper()
    assert verify_login(form, settings.sso_salt, now()).resource_id == "r1"


def test_verify_refuses_an_empty_salt_even_with_matching_tokens():
    with pytest.raises(SsoRefused):
        verify_login(fields("r1", ""), "", now())


@pytest.mark.parametrize("given", ["app\x00name", "<script>alert(1)</script>", "x" * 300, "Upper-Case"])
def test_an_app_name_that_is_not_one_still_logs_in_but_is_never_stored(
    client, settings, db_session, resource_id, given
):
    form = {**fields(resource_id, settings.sso_salt), "app": given, "context_app": given}
    response = _login(client, form)
    assert response.status_code in (302, 303)
    assert _session(client)["app"] == ""
    assert db_session.get(Resource, resource_id).app_name is None


def test_a_heroku_app_name_is_kept_for_the_dashboard(client, settings, db_session, resource_id):
    _login(client, fields(resource_id, settings.sso_salt))
    assert db_session.get(Resource, resource_id).app_name == APP
