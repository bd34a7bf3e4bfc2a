"""`POST /heroku/resources` in asynchronous mode: 202 now, the config later from a worker job."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import select

from provider import create_app
from provider.models import AppLogLine, Resource
from provider.models.resource import PROVISIONING
from provider.services.credentials import authenticate
from provider.services.provisioning import config_for

from .partner import provision, queued


@pytest.fixture
def async_settings(settings):
    return dataclasses.replace(settings, provisioning_mode="async")


@pytest.fixture
def async_client(async_settings):
    return create_app(async_settings).test_client()


def test_async_provision_answers_202_with_id_and_message_but_no_config(
    async_client, async_settings
):
    resource_uuid = str(uuid.uuid4())
    response = provision(async_client, async_settings, resource_uuid=resource_uuid)
    assert response.status_code == 202
    assert response.json["id"] == resource_uuid
    assert response.json["message"]
    assert "config" not in response.json


def test_async_provision_leaves_the_resource_provisioning_and_enqueues_completion(
    async_client, async_settings, db_session
):
    resource_id = provision(async_client, async_settings).json["id"]
    assert db_session.get(Resource, resource_id).state == PROVISIONING
    assert queued(async_settings) == [
        ("workers.jobs.provisioning.complete_provisioning", (resource_id,))
    ]
    assert db_session.scalars(select(AppLogLine.message)).all() == [
        "cloudmailin: provisioning plan=starter"
    ]


def test_a_repeated_async_post_answers_like_the_first_and_enqueues_nothing_more(
    async_client, async_settings, db_session
):
    resource_uuid = str(uuid.uuid4())
    first = provision(async_client, async_settings, resource_uuid=resource_uuid)
    second = provision(async_client, async_settings, resource_uuid=resource_uuid)
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json == second.json
    assert len(queued(async_settings)) == 1


def test_the_config_the_async_job_computes_is_stable_and_its_key_authenticates(
    async_client, async_settings, db_session
):
    """The job computes the config later; the key in it must be the one that authenticates."""
    resource_id = provision(async_client, async_settings).json["id"]
    resource = db_session.get(Resource, resource_id)
    first = config_for(db_session, async_settings, resource)
    again = config_for(db_session, async_settings, resource)
    assert first == again
    username, key = first["CLOUDMAILIN_SMTP_URL"].removeprefix("smtp://").split("@")[0].split(":")
    assert authenticate(db_session, username, key) is resource
