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
