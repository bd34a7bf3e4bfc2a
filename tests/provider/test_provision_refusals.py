"""Bodies Heroku (or anyone) may get wrong: a JSON 4xx with a message, never a 500, nothing created."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from provider.models import Address, AppLogLine, Credential, Resource

from .partner import provision, provision_body, queued, send


@pytest.fixture
def nothing_created(db_session, settings):
    yield
    for model in (Resource, Address, Credential, AppLogLine):
        assert db_session.scalar(select(func.count()).select_from(model)) == 0, model
    assert queued(settings) == []


def _refused(response, status: int) -> str:
    assert response.status_code == status, response.data[:200]
    assert response.is_json
    message = response.json["message"]
    assert isinstance(message, str) and message
    return message


def test_unknown_plan_is_422_naming_the_known_plans(client, settings, nothing_created):
    message = _refused(provision(client, settings, plan="platinum"), 422)
    assert "platinum" in message
    for plan in ("free", "starter", "premium", "corp2m"):
        assert plan in message


@pytest.mark.parametrize("region", ["amazon-web-services::ap-northeast-1", "mars", "", 3])
def test_unsupported_region_is_422_saying_which_are_accepted(
    client, settings, nothing_created, region
):
    message = _refused(provision(client, settings, region=region), 422)
    assert "us" in message and "amazon-web-services::eu-west-1" in message


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("ftp://example.com/in", "http"),
        ("/incoming", "http"),
        ("example.com/incoming", "http"),
        ("https://exa mple.com/in", "spaces"),
        ("https://example.com/" + "a" * 2048, "2048"),
        ("https:///nohost", "host"),
        ("https://bad_host!/in", "host"),
        ("https://example.com:99999/in", "malformed"),
        (True, "needs a URL"),
        ("true", "needs a URL"),
        ("", "empty"),
    ],
)
def test_bad_target_option_is_422_with_a_clear_message(
    client, settings, nothing_created, target, why
):
    message = _refused(provision(client, settings, options={"target": target}), 422)
    assert why in message


def test_non_uuid_id_is_422(client, settings, nothing_created):
    for bad in (
        "not-a-uuid",
        "0123456789abcdef0123456789abcdef",
        "{01234567-89ab-cdef-0123-456789abcdef}",
        12,
    ):
        message = _refused(provision(client, settings, resource_uuid=None, uuid=bad), 422)
        assert "uuid" in message


@pytest.mark.parametrize("missing", ["uuid", "plan"])
def test_missing_uuid_or_plan_is_422(client, settings, nothing_created, missing):
    body = provision_body()
    del body[missing]
    message = _refused(send(client, settings, "POST", body=body), 422)
    assert missing in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("plan", 5),
        ("plan", ["starter"]),
        ("name", {"x": 1}),
        ("name", "n" * 256),
        ("callback_url", 7),
        ("heroku_id", False),
        ("log_input_url", ["x"]),
        ("oauth_grant", "code"),
        ("oauth_grant", {"code": 5}),
        ("oauth_grant", {"code": "c", "expires_at": "next tuesday"}),
        ("options", ["target"]),
        ("options", {"target": {"url": "https://x.example"}}),
        ("options", {"target": None}),
        ("options", {f"o{i}": "v" for i in range(40)}),
    ],
)
def test_wrong_types_and_sizes_are_422(client, settings, nothing_created, field, value):
    _refused(provision(client, settings, **{field: value}), 422)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"this is not json",
        b'{"uuid": ',
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,
        b"A" * (1024 * 1024),
    ],
    ids=["empty", "text", "truncated", "array", "string", "null", "binary", "deep", "1MB-junk"],
)
def test_bodies_that_are_not_a_json_object_are_400(client, settings, nothing_created, raw):
    _refused(send(client, settings, "POST", raw=raw), 400)


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("name", "app\x00name", "NUL"),
        ("heroku_id", "app123@heroku.com\x00", "NUL"),
        ("callback_url", "https://api.heroku.com/addons/\x00", "NUL"),
        ("name", "\ud800", "Unicode"),
        ("options", {"greeting": "hi\x00"}, "NUL"),
        ("options", {"na\x00me": "x"}, "NUL"),
        ("options", {"greeting": "\udfff"}, "Unicode"),
        ("oauth_grant", {"code": "c\x00de"}, "NUL"),
    ],
)
def test_text_the_database_cannot_store_is_422_not_500(
    client, settings, nothing_created, field, value, why
):
    # json.dumps writes these as \u0000 and \ud800 escapes, as a hostile client would.
    assert why in _refused(provision(client, settings, **{field: value}), 422)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json_and_get_400(client, settings, nothing_created, constant):
    body = json.dumps(provision_body(options={"ratio": 1.5})).encode().replace(b"1.5", constant)
    _refused(send(client, settings, "POST", raw=body), 400)


def test_a_megabyte_of_json_junk_inside_a_field_is_refused(client, settings, nothing_created):
    body = provision_body(name="x" * (1024 * 1024))
    _refused(send(client, settings, "POST", raw=json.dumps(body).encode()), 422)


def test_a_body_over_the_size_cap_is_413_json(client, settings, nothing_created):
    response = send(client, settings, "POST", raw=b" " * (3 * 1024 * 1024))
    _refused(response, 413)


def test_a_refused_provision_can_be_retried_with_the_same_uuid(client, settings):
    resource_uuid = str(uuid.uuid4())
    assert (
        provision(client, settings, resource_uuid=resource_uuid, plan="platinum").status_code == 422
    )
    assert provision(client, settings, resource_uuid=resource_uuid).status_code == 201
