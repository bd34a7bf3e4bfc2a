"""Rotating ENCRYPTION_KEY (README, "Rotating ENCRYPTION_KEY"): deploy the new key with the old one
in ENCRYPTION_KEYS_OLD, run `flask secrets rotate`, remove the old key. Through the partner API and
the real command, against the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from provider import create_app
from provider.crypto import DecryptionError, SecretBox, box_for, new_encryption_key
from provider.heroku_platform import TokenSet
from provider.models import Credential, Domain, Resource
from provider.services import applog, oauth_tokens
from provider.services.credentials import authenticate
from provider.services.reencrypt import encrypted_columns
from provider.settings import Settings
from tests.conftest import REPO_ROOT

from .partner import provision
from .sso_fields import fields

LOG_URL = "https://token:t.abc@127.0.0.1:9/logs"


def _rotated(settings: Settings, new_key: str) -> Settings:
    return dataclasses.replace(
        settings, encryption_key=new_key, encryption_keys_old=(settings.encryption_key,)
    )


def _rotate_command(settings: Settings, *args: str):
    return create_app(settings).test_cli_runner().invoke(args=["secrets", "rotate", *args])


def _stored_secrets(db_session) -> list[bytes]:
    db_session.expire_all()
    values: list[bytes] = []
    for _table, columns in encrypted_columns():
        for row in db_session.execute(select(*columns)).all():
            values.extend(bytes(v) for v in row if v is not None)
    return values


def _smtp_pair(response) -> tuple[str, str]:
    parts = urlsplit(response.json["config"]["CLOUDMAILIN_SMTP_URL"])
    return parts.username or "", parts.password or ""


def test_every_secret_column_is_covered_by_the_rotation():
    found = {(table.name, column.name) for table, columns in encrypted_columns() for column in columns}
    assert found == {
        ("resources", "log_input_url_enc"), ("resources", "oauth_grant_enc"),
        ("resources", "access_token_enc"), ("resources", "refresh_token_enc"),
        ("addresses", "signing_secret_enc"), ("domains", "dkim_private_key_enc"),
        ("credentials", "key_enc"), ("resources", "events_webhook_url_enc"),
        ("addresses", "store_access_key_id_enc"), ("addresses", "store_secret_access_key_enc"),
    }


def test_a_rotation_keeps_the_repeated_provision_answer_and_its_key_authenticating(
    settings, db_session
):
    resource_uuid = str(uuid.uuid4())
    first = provision(create_app(settings).test_client(), settings, resource_uuid=resource_uuid)
    assert first.status_code == 201
    user, key = _smtp_pair(first)

    rotated = _rotated(settings, new_encryption_key())
    before = provision(create_app(rotated).test_client(), rotated, resource_uuid=resource_uuid)
    assert before.status_code == 200 and before.json["config"] == first.json["config"]

    result = _rotate_command(rotated)
    assert result.exit_code == 0, result.output
    assert "credentials.key_enc: 1 re-encrypted, 0 already current, 0 undecryptable" in result.output

    new_only = dataclasses.replace(rotated, encryption_keys_old=())
    after = provision(create_app(new_only).test_client(), new_only, resource_uuid=resource_uuid)
    assert after.status_code == 200 and after.json["config"] == first.json["config"]
    found = authenticate(db_session, user, key)
    assert found is not None and found.id == resource_uuid


def test_old_secrets_decrypt_beside_the_new_key_and_only_re_encrypted_ones_without_it(
    settings, db_session
):
    resource_uuid = str(uuid.uuid4())
    provision(create_app(settings).test_client(), settings, resource_uuid=resource_uuid)
    under_old_key = _stored_secrets(db_session)
    assert len(under_old_key) == 4  # log drain URL, OAuth grant, signing secret, SMTP key
    plaintexts = sorted(SecretBox(settings.encryption_key).decrypt(v) for v in under_old_key)
    assert LOG_URL in plaintexts and "grant-code-123" in plaintexts

    new_key = new_encryption_key()
    rotated = _rotated(settings, new_key)
    new_key_only = SecretBox(new_key)
    assert sorted(box_for(rotated).decrypt(v) for v in under_old_key) == plaintexts
    resource = db_session.get(Resource, resource_uuid)
    assert resource is not None and applog.log_input_url(rotated, resource) == LOG_URL
    for secret in under_old_key:
        with pytest.raises(DecryptionError):
            new_key_only.decrypt(secret)

    assert _rotate_command(rotated).exit_code == 0
    reencrypted = _stored_secrets(db_session)
    assert sorted(new_key_only.decrypt(v) for v in reencrypted) == plaintexts
    assert all(new_key_only.is_current(v) for v in reencrypted)
    for stale in under_old_key:  # copies still under the old key die with it
        with pytest.raises(DecryptionError):
            new_key_only.decrypt(stale)
    resource = db_session.get(Resource, resource_uuid)
    assert resource is not None
    assert applog.log_input_url(dataclasses.replace(rotated, encryption_keys_old=()), resource) == LOG_URL


def test_re_encryption_is_idempotent_and_reports_nothing_left_on_a_second_run(settings, db_session):
    for _ in range(2):
        provision(create_app(settings).test_client(), settings)
    rotated = _rotated(settings, new_encryption_key())
    first = _rotate_command(rotated)
    assert first.exit_code == 0 and "total: 8 re-encrypted, 0 undecryptable" in first.output
    stored = _stored_secrets(db_session)

    second = _rotate_command(rotated)
    assert second.exit_code == 0
    assert "total: 0 re-encrypted, 0 undecryptable" in second.output
    assert "resources.log_input_url_enc: 0 re-encrypted, 2 already current" in second.output
    assert "ENCRYPTION_KEYS_OLD can be removed" in second.output
    assert _stored_secrets(db_session) == stored, "a second run rewrites nothing"


def test_re_encryption_walks_every_batch(settings, db_session):
    client = create_app(settings).test_client()
    for _ in range(5):
        provision(client, settings)
    rotated = _rotated(settings, new_encryption_key())
    result = _rotate_command(rotated, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "addresses.signing_secret_enc: 5 re-encrypted" in result.output
    assert all(SecretBox(rotated.encryption_key).is_current(v) for v in _stored_secrets(db_session))


def test_a_secret_no_key_decrypts_is_reported_and_left_unchanged_while_the_rest_move_on(
    settings, db_session
):
    provision(create_app(settings).test_client(), settings)
    stranger = SecretBox(new_encryption_key()).encrypt("dkim key under a lost key")
    resource = db_session.scalars(select(Resource)).one()
    domain = Domain(resource_id=resource.id, name="mail.example.com", kind="sending",
                    dkim_private_key_enc=stranger)
    db_session.add(domain)
    db_session.commit()

    rotated = _rotated(settings, new_encryption_key())
    result = _rotate_command(rotated)
    assert result.exit_code == 1
    assert "domains.dkim_private_key_enc: 0 re-encrypted, 0 already current, 1 undecryptable" in (
        result.output
    )
    assert "Keep the old keys" in result.output
    db_session.expire_all()
    assert db_session.get(Domain, domain.id).dkim_private_key_enc == stranger
    credential = db_session.scalars(select(Credential)).one()
    assert SecretBox(rotated.encryption_key).is_current(credential.key_enc)


def test_tokens_refreshed_before_the_re_encryption_are_written_under_the_new_key(settings, db_session):
    provision(create_app(settings).test_client(), settings)
    resource = db_session.scalars(select(Resource)).one()
    rotated = _rotated(settings, new_encryption_key())
    oauth_tokens.store_tokens(rotated, resource, TokenSet("access", "refresh", resource.created_at))
    db_session.commit()
    new_key_only = SecretBox(rotated.encryption_key)
    assert resource.access_token_enc is not None
    assert new_key_only.decrypt(resource.access_token_enc) == "access"
    result = _rotate_command(rotated)
    assert "resources.access_token_enc: 0 re-encrypted, 1 already current" in result.output


def test_without_secret_key_a_dashboard_session_survives_the_rotation(settings):
    own_key = dataclasses.replace(settings, secret_key=settings.encryption_key)  # SECRET_KEY unset
    client = create_app(own_key).test_client()
    resource_id = provision(client, own_key).json["id"]
    client.post("/sso/login", data=fields(resource_id, own_key.sso_salt))
    cookie = client.get_cookie("session")
    assert cookie is not None and client.get("/dashboard").status_code == 200

    new_key = new_encryption_key()
    rotated = dataclasses.replace(
        _rotated(own_key, new_key), secret_key=new_key, secret_key_fallbacks=(own_key.encryption_key,)
    )
    after = create_app(rotated).test_client()
    after.set_cookie("session", cookie.value)
    assert after.get("/dashboard").status_code == 200
    removed = dataclasses.replace(rotated, encryption_keys_old=(), secret_key_fallbacks=())
    gone = create_app(removed).test_client()
    gone.set_cookie("session", cookie.value)
    assert gone.get("/dashboard").status_code == 403


def test_the_documented_command_line_rotates_with_the_keys_from_the_environment(settings, db_session):
    provision(create_app(settings).test_client(), settings)
    new_key = new_encryption_key()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "ENCRYPTION_KEY": new_key,
        "ENCRYPTION_KEYS_OLD": settings.encryption_key,
    }
    done = subprocess.run(
        ["flask", "--app", "provider", "secrets", "rotate"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "total: 4 re-encrypted, 0 undecryptable" in done.stdout
    assert all(SecretBox(new_key).is_current(v) for v in _stored_secrets(db_session))
