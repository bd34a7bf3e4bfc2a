"""`POST /heroku/resources` in synchronous mode (spec/heroku.md, Provision)."""

from __future__ import annotations

import re
import threading
import uuid
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from provider.crypto import SecretBox
from provider.models import Address, AppLogLine, Credential, Resource
from provider.models.resource import PROVISIONED
from provider.services.credentials import authenticate

from .partner import ADDONS_MEDIA_TYPE, TARGET, provision, provision_body, queued, send

FORWARD = re.compile(r"^[0-9a-f]{20}@cloudmailin\.test$")


def _count(db_session, model):
    return db_session.scalar(select(func.count()).select_from(model))


def test_provision_answers_201_with_the_uuid_as_id_config_and_message(client, settings):
    resource_uuid = str(uuid.uuid4())
    response = provision(client, settings, resource_uuid=resource_uuid)
    assert response.status_code == 201
    assert response.is_json
    assert response.json["id"] == resource_uuid
    assert set(response.json["config"]) == {"CLOUDMAILIN_FORWARD_ADDRESS", "CLOUDMAILIN_SMTP_URL"}
    assert all(isinstance(value, str) for value in response.json["config"].values())
    assert response.json["message"]


def test_forward_address_is_20_lowercase_hex_at_the_inbound_domain(client, settings):
    config = provision(client, settings).json["config"]
    assert FORWARD.match(config["CLOUDMAILIN_FORWARD_ADDRESS"])


def test_smtp_url_has_url_safe_user_and_key_and_the_public_host_and_port(client, settings):
    url = provision(client, settings).json["config"]["CLOUDMAILIN_SMTP_URL"]
    parts = urlsplit(url)
    assert parts.scheme == "smtp"
    assert parts.hostname == settings.smtp_public_host
    assert parts.port == settings.smtp_public_port
    assert parts.query == "starttls=true"
    assert re.fullmatch(r"[0-9a-f]+", parts.username or "")
    assert re.fullmatch(r"[0-9a-f]{32}", parts.password or "")


def test_smtp_url_credentials_authenticate_and_the_key_is_stored_hashed(
    client, settings, db_session
):
    response = provision(client, settings)
    parts = urlsplit(response.json["config"]["CLOUDMAILIN_SMTP_URL"])
    resource = authenticate(db_session, parts.username or "", parts.password or "")
    assert resource is not None and resource.id == response.json["id"]
    stored = db_session.scalars(select(Credential)).one()
    assert parts.password not in stored.key_hash


def test_provision_accepts_the_heroku_media_type_without_application_json(client, settings):
    response = send(client, settings, "POST", body=provision_body())
    assert response.request.headers["Content-Type"] == ADDONS_MEDIA_TYPE
    assert response.status_code == 201


def test_provision_stores_the_resource_with_plan_region_target_and_encrypted_secrets(
    client, settings, db_session
):
    resource_uuid = str(uuid.uuid4())
    provision(
        client, settings, resource_uuid=resource_uuid, region="amazon-web-services::eu-west-1"
    )
    resource = db_session.get(Resource, resource_uuid)
    assert resource is not None
    assert (resource.plan, resource.region, resource.state) == ("starter", "eu", PROVISIONED)
    assert resource.addresses[0].target_url == TARGET
    box = SecretBox(settings.encryption_key)
    assert (
        resource.oauth_grant_enc is not None and b"grant-code-123" not in resource.oauth_grant_enc
    )
    assert box.decrypt(resource.oauth_grant_enc) == "grant-code-123"
    assert resource.oauth_grant_expires_at is not None
    assert resource.log_input_url_enc is not None
    assert box.decrypt(resource.log_input_url_enc) == "https://token:t.abc@127.0.0.1:9/logs"


def test_unknown_fields_are_ignored(client, settings):
    response = provision(client, settings, something_new={"nested": [1, 2]}, another=3)
    assert response.status_code == 201


def test_kensa_style_body_without_grant_name_or_options_provisions(client, settings, db_session):
    resource_uuid = str(uuid.uuid4())
    response = send(client, settings, "POST", body={"uuid": resource_uuid, "plan": "test"})
    assert response.status_code == 201
    resource = db_session.get(Resource, resource_uuid)
    assert resource is not None and resource.region == "us"
    assert resource.addresses[0].target_url is None
    assert queued(settings) == []


def test_sync_provision_enqueues_the_grant_exchange_after_commit(client, settings):
    resource_id = provision(client, settings).json["id"]
    assert queued(settings) == [("workers.jobs.provisioning.exchange_grant", (resource_id,))]


def test_the_same_uuid_twice_gives_one_resource_with_the_same_id_and_config(
    client, settings, db_session
):
    resource_uuid = str(uuid.uuid4())
    first = provision(client, settings, resource_uuid=resource_uuid)
    second = provision(client, settings, resource_uuid=resource_uuid)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json["id"] == first.json["id"] == resource_uuid
    assert second.json["config"] == first.json["config"]
    assert _count(db_session, Resource) == 1
    assert _count(db_session, Address) == 1
    assert _count(db_session, Credential) == 1
    assert len(queued(settings)) == 1


def test_two_uuids_give_two_resources_with_different_ids_and_config(client, settings, db_session):
    first = provision(client, settings)
    second = provision(client, settings)
    assert first.json["id"] != second.json["id"]
    for name in ("CLOUDMAILIN_FORWARD_ADDRESS", "CLOUDMAILIN_SMTP_URL"):
        assert first.json["config"][name] != second.json["config"][name]
    assert _count(db_session, Resource) == 2


def test_concurrent_posts_of_one_uuid_create_one_resource(app, settings, db_session):
    resource_uuid = str(uuid.uuid4())
    barrier = threading.Barrier(8)
    answers: list[tuple[int, dict]] = []

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        response = send(client, settings, "POST", body=provision_body(resource_uuid))
        answers.append((response.status_code, response.json))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({str(body["config"]) for _, body in answers}) == 1
    assert _count(db_session, Resource) == 1
    assert _count(db_session, Credential) == 1


def test_plan_may_carry_the_addon_prefix(client, settings, db_session):
    resource_id = provision(client, settings, plan="cloudmailin:premium").json["id"]
    assert db_session.get(Resource, resource_id).plan == "premium"


@pytest.mark.parametrize(
    ("region", "stored"), [("us", "us"), ("eu", "eu"), ("amazon-web-services::eu-west-1", "eu")]
)
def test_accepted_regions(client, settings, db_session, region, stored):
    response = provision(client, settings, region=region)
    assert response.status_code == 201
    assert db_session.get(Resource, response.json["id"]).region == stored


def test_provision_logs_to_the_app_log_without_secrets(client, settings, db_session):
    response = provision(client, settings)
    lines = db_session.scalars(select(AppLogLine.message)).all()
    assert lines == ["cloudmailin: provisioned plan=starter"]
    key = urlsplit(response.json["config"]["CLOUDMAILIN_SMTP_URL"]).password
    assert all(key not in line for line in lines)


def test_provision_message_names_the_address_and_hides_a_target_password(client, settings):
    response = provision(
        client, settings, options={"target": "https://user:s3cret@app.example.com/in"}
    )
    assert response.status_code == 201
    message = response.json["message"]
    assert response.json["config"]["CLOUDMAILIN_FORWARD_ADDRESS"] in message
    assert "s3cret" not in message
    assert "https://user:" in message


def test_other_options_may_be_strings_or_flags(client, settings, db_session):
    options = {"target": TARGET, "verbose": True, "mode": "true", "count": "3"}
    response = provision(client, settings, options=options)
    assert response.status_code == 201
    stored = db_session.get(Resource, response.json["id"])
    assert stored.options == {"verbose": True, "mode": "true", "count": "3"}
    assert stored.addresses[0].target_url == TARGET


def test_reprovisioning_a_deprovisioned_uuid_is_refused_with_410(client, settings):
    resource_id = provision(client, settings).json["id"]
    send(client, settings, "DELETE", f"/heroku/resources/{resource_id}")
    response = provision(client, settings, resource_uuid=resource_id)
    assert response.status_code == 410
    assert "deprovisioned" in response.json["message"]
