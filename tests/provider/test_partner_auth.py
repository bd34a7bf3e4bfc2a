"""Basic auth comes before anything else on every partner API call (spec/heroku.md)."""

from __future__ import annotations

import dataclasses

import pytest

from provider import create_app

from .partner import basic, provision, provision_body, send

CALLS = [
    ("POST", "/heroku/resources"),
    ("PUT", "/heroku/resources/01234567-89ab-cdef-0123-456789abcdef"),
    ("DELETE", "/heroku/resources/01234567-89ab-cdef-0123-456789abcdef"),
]


@pytest.mark.parametrize(("method", "path"), CALLS)
def test_missing_credentials_get_401_with_a_json_message(client, method, path):
    response = client.open(path, method=method, json={"plan": "free"})
    assert response.status_code == 401
    assert response.is_json and response.json["message"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(("method", "path"), CALLS)
def test_wrong_password_gets_401(client, settings, method, path):
    headers = basic(settings.addon_id, settings.addon_password + "x")
    response = client.open(path, method=method, json=provision_body(), headers=headers)
    assert response.status_code == 401
    assert response.is_json


def test_wrong_user_with_the_right_password_gets_401(client, settings):
    response = client.post(
        "/heroku/resources", json=provision_body(), headers=basic("other", settings.addon_password)
    )
    assert response.status_code == 401


def test_wrong_auth_is_checked_before_the_body(client, settings):
    response = client.post(
        "/heroku/resources", data=b"not json", headers=basic("cloudmailin", "nope")
    )
    assert response.status_code == 401


def test_wrong_auth_gets_401_even_for_a_deprovisioned_resource(client, settings):
    resource_id = provision(client, settings).json["id"]
    assert send(client, settings, "DELETE", f"/heroku/resources/{resource_id}").status_code == 204
    headers = basic(settings.addon_id, "wrong")
    for method in ("PUT", "DELETE"):
        response = client.open(
            f"/heroku/resources/{resource_id}",
            method=method,
            json={"plan": "free"},
            headers=headers,
        )
        assert response.status_code == 401


def test_an_unset_addon_password_accepts_nobody(settings):
    open_settings = dataclasses.replace(settings, addon_password="")
    client = create_app(open_settings).test_client()
    response = client.post(
        "/heroku/resources", json=provision_body(), headers=basic(settings.addon_id, "")
    )
    assert response.status_code == 401


def test_ping_answers_json_only_with_the_addon_credentials(client, settings):
    assert client.get("/heroku/ping").status_code == 401
    response = client.get("/heroku/ping", headers=basic(settings.addon_id, settings.addon_password))
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


WRONG_SHAPES = [
    ("GET", "/heroku/resources"),  # no such method on the collection
    ("PATCH", "/heroku/resources/01234567-89ab-cdef-0123-456789abcdef"),
    ("POST", "/heroku/resources/01234567-89ab-cdef-0123-456789abcdef"),
    ("OPTIONS", "/heroku/resources"),
    ("GET", "/heroku/no-such-path"),
    ("POST", "/heroku/resources/a/b"),
    ("GET", "/heroku/"),
    ("GET", "/heroku"),
]


@pytest.mark.parametrize(("method", "path"), WRONG_SHAPES)
def test_a_wrong_path_or_method_without_credentials_is_401_before_404_or_405(client, method, path):
    response = client.open(path, method=method)
    assert response.status_code == 401
    assert response.is_json and response.json["message"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(("method", "path"), WRONG_SHAPES[:3] + WRONG_SHAPES[4:])
def test_with_credentials_a_wrong_path_or_method_is_404_or_405_in_json(client, settings, method, path):
    response = client.open(path, method=method, headers=basic(settings.addon_id, settings.addon_password))
    assert response.status_code in (404, 405)
    assert response.is_json and response.json["message"]


def test_the_legacy_sso_get_under_heroku_needs_no_basic_auth(client):
    """A browser opens it with a token (views/sso.py), so it answers the SSO refusal, not 401."""
    response = client.get("/heroku/resources/01234567-89ab-cdef-0123-456789abcdef?token=x&timestamp=1")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
