"""`DELETE /heroku/resources/<id>` (spec/heroku.md, Deprovision)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from provider.crypto import SecretBox
from provider.errors import UnknownRecipient
from provider.models import AppLogLine, Domain, Resource
from provider.models.base import utcnow
from provider.models.domain import INBOUND
from provider.models.resource import DEPROVISIONED
from provider.services.credentials import authenticate
from provider.services.provisioning import purge_deprovisioned
from provider.services.routing import route_recipient

from .partner import provision, send


def _delete(client, settings, resource_id):
    return send(client, settings, "DELETE", f"/heroku/resources/{resource_id}")


def _with_tokens(db_session, settings, resource_id):
    resource = db_session.get(Resource, resource_id)
    box = SecretBox(settings.encryption_key)
    resource.access_token_enc = box.encrypt("access")
    resource.refresh_token_enc = box.encrypt("refresh")
    resource.access_token_expires_at = utcnow() + timedelta(hours=8)
    db_session.add(Domain(resource_id=resource_id, name="mail.example.com", kind=INBOUND))
    db_session.commit()


def test_delete_answers_204_and_marks_the_resource_deprovisioned(client, settings, db_session):
    resource_id = provision(client, settings).json["id"]
    response = _delete(client, settings, resource_id)
    assert response.status_code == 204
    resource = db_session.get(Resource, resource_id)
    assert resource.state == DEPROVISIONED and not resource.active
    assert resource.deprovisioned_at is not None


def test_delete_revokes_the_smtp_credentials(client, settings, db_session):
    response = provision(client, settings)
    parts = urlsplit(response.json["config"]["CLOUDMAILIN_SMTP_URL"])
    assert authenticate(db_session, parts.username, parts.password) is not None
    _delete(client, settings, response.json["id"])
    db_session.expire_all()
    assert authenticate(db_session, parts.username, parts.password) is None


def test_delete_drops_oauth_tokens_grant_target_options_and_custom_domains(
    client, settings, db_session
):
    resource_id = provision(
        client, settings, options={"target": "https://u:pw@x.example/in", "a": "b"}
    ).json["id"]
    _with_tokens(db_session, settings, resource_id)
    _delete(client, settings, resource_id)
    db_session.expire_all()
    resource = db_session.get(Resource, resource_id)
    assert resource.oauth_grant_enc is None
    assert resource.access_token_enc is None and resource.refresh_token_enc is None
    assert resource.options == {}
    assert resource.addresses[0].target_url is None
    assert db_session.scalars(select(Domain)).all() == []


def test_after_delete_the_address_refuses_mail(client, settings, db_session):
    response = provision(client, settings)
    address = response.json["config"]["CLOUDMAILIN_FORWARD_ADDRESS"]
    assert route_recipient(db_session, settings, address, now=utcnow()).target_url is not None
    _delete(client, settings, response.json["id"])
    db_session.expire_all()
    with pytest.raises(UnknownRecipient):
        route_recipient(db_session, settings, address, now=utcnow())


def test_delete_is_logged_to_the_app_log(client, settings, db_session):
    resource_id = provision(client, settings).json["id"]
    _delete(client, settings, resource_id)
    lines = db_session.scalars(select(AppLogLine.message).order_by(AppLogLine.id)).all()
    assert lines[-1] == "cloudmailin: deprovisioned"


def test_a_repeated_delete_answers_204_again(client, settings):
    resource_id = provision(client, settings).json["id"]
    assert _delete(client, settings, resource_id).status_code == 204
    assert _delete(client, settings, resource_id).status_code == 204


def test_delete_of_an_id_never_seen_or_already_purged_is_410_json(client, settings):
    response = _delete(client, settings, str(uuid.uuid4()))
    assert response.status_code == 410
    assert response.is_json and response.json["message"]


def test_delete_of_a_path_that_is_not_a_uuid_is_404_json(client, settings):
    response = _delete(client, settings, "nothing-here")
    assert response.status_code == 404
    assert response.is_json


def test_purge_deletes_tombstones_older_than_the_grace_period_only(client, settings, db_session):
    old_id = provision(client, settings).json["id"]
    recent_id = provision(client, settings).json["id"]
    live_id = provision(client, settings).json["id"]
    _delete(client, settings, old_id)
    _delete(client, settings, recent_id)
    db_session.get(Resource, old_id).deprovisioned_at = utcnow() - timedelta(days=8)
    db_session.commit()
    assert purge_deprovisioned(db_session) == 1
    db_session.expire_all()
    assert db_session.get(Resource, old_id) is None
    assert db_session.get(Resource, recent_id) is not None
    assert db_session.get(Resource, live_id) is not None
    assert (
        db_session.scalars(select(AppLogLine).where(AppLogLine.resource_id == old_id)).all() == []
    )
