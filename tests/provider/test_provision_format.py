"""`--format` at provisioning (`heroku addons:create cloudmailin -- --format=multipart`): the
forward address is created in that format, and an unknown one is refused with the list."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from provider.models import Address, Resource

from .partner import TARGET, provision, queued


@pytest.mark.parametrize("fmt", ["json", "multipart", "raw", "raw_json"])
def test_the_format_option_is_the_new_addresses_format(client, settings, db_session, fmt):
    response = provision(client, settings, options={"target": TARGET, "format": fmt})
    assert response.status_code == 201, response.json
    resource = db_session.get(Resource, response.json["id"])
    [address] = resource.addresses
    assert (address.format, address.target_url, address.size_as_string) == (fmt, TARGET, False)
    assert f"in the {fmt} format" in response.json["message"]


def test_without_a_format_option_the_address_is_json(client, settings, db_session):
    response = provision(client, settings, options={"target": TARGET})
    assert db_session.get(Resource, response.json["id"]).addresses[0].format == "json"


def test_the_format_is_read_in_any_case_and_lives_on_the_address_not_in_the_options(
    client, settings, db_session
):
    response = provision(client, settings, options={"target": TARGET, "format": " Raw_JSON ", "x": "1"})
    assert response.status_code == 201
    resource = db_session.get(Resource, response.json["id"])
    assert resource.addresses[0].format == "raw_json"
    assert resource.options == {"x": "1"}


@pytest.mark.parametrize(
    ("fmt", "shown"),
    [("xml", "'xml'"), ("", "''"), ("JSONP", "'JSONP'"), (3, "3"), (2.5, "2.5")],
)
def test_an_unknown_format_is_422_listing_the_formats_and_creates_nothing(
    client, settings, db_session, fmt, shown
):
    response = provision(client, settings, options={"target": TARGET, "format": fmt})
    assert response.status_code == 422
    assert response.json["message"] == (
        f"Unknown format {shown}; choose json, multipart, raw or raw_json."
    )
    for model in (Resource, Address):
        assert db_session.scalar(select(func.count()).select_from(model)) == 0
    assert queued(settings) == []


@pytest.mark.parametrize("flag", [True, "true"])
def test_a_bare_format_flag_is_422_showing_how_to_give_one(client, settings, flag):
    response = provision(client, settings, options={"target": TARGET, "format": flag})
    assert response.status_code == 422
    assert response.json["message"] == (
        "--format needs a value: -- --format=multipart (json, multipart, raw or raw_json)."
    )
