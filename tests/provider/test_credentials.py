"""Credentials: SMTP AUTH and the API key both go through `credentials.authenticate`."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from provider.crypto import SecretBox
from provider.models import Credential, Resource
from provider.models.base import utcnow
from provider.models.resource import DEPROVISIONED, PROVISIONED, PROVISIONING
from provider.services.credentials import (
    IssuedCredential,
    authenticate,
    current_credential,
    current_pair,
    issue_credential,
    revoke_all,
    smtp_url,
)


@pytest.fixture
def resource(db_session):
    resource = Resource(id=str(uuid.uuid4()), plan="starter", state=PROVISIONED)
    db_session.add(resource)
    db_session.flush()
    return resource


def test_an_issued_credential_authenticates_to_its_resource(db_session, settings, resource):
    issued = issue_credential(db_session, settings, resource)
    db_session.commit()
    assert authenticate(db_session, issued.username, issued.key) is resource


def test_a_wrong_key_or_unknown_user_does_not_authenticate(db_session, settings, resource):
    issued = issue_credential(db_session, settings, resource)
    db_session.commit()
    wrong = issued.key[:-1] + ("1" if issued.key.endswith("0") else "0")
    assert authenticate(db_session, issued.username, wrong) is None
    assert authenticate(db_session, issued.username, "") is None
    assert authenticate(db_session, "nobody", issued.key) is None


@pytest.mark.parametrize("suffix", ["\x00", "\udcff"])  # a NUL; a byte SMTP AUTH LOGIN could not decode
def test_a_username_the_database_cannot_hold_is_unknown_not_an_error(db_session, settings, resource, suffix):
    issued = issue_credential(db_session, settings, resource)
    db_session.commit()
    assert authenticate(db_session, issued.username + suffix, issued.key) is None
    assert authenticate(db_session, issued.username, issued.key) is resource  # the session still works


def test_only_the_hash_of_the_key_is_stored(db_session, settings, resource):
    issued = issue_credential(db_session, settings, resource)
    db_session.commit()
    stored = db_session.query(Credential).one()
    assert stored.username == issued.username
    assert issued.key not in stored.key_hash and len(stored.key_hash) == 64


def test_the_key_is_answered_again_from_its_encrypted_copy(db_session, settings, resource):
    issued = issue_credential(db_session, settings, resource)
    db_session.commit()
    db_session.expire_all()
    stored = db_session.query(Credential).one()
    assert stored.key_enc is not None and issued.key.encode() not in stored.key_enc
    assert SecretBox(settings.encryption_key).decrypt(stored.key_enc) == issued.key
    assert current_pair(settings, resource) == issued


def test_keys_differ_between_credentials(db_session, settings, resource):
    first = issue_credential(db_session, settings, resource)
    second = issue_credential(db_session, settings, resource)
    assert first.key != second.key and first.username != second.username


def test_a_provisioning_resource_authenticates_but_a_deprovisioned_one_does_not(
    db_session, settings, resource
):
    issued = issue_credential(db_session, settings, resource)
    resource.state = PROVISIONING
    db_session.commit()
    assert authenticate(db_session, issued.username, issued.key) is resource
    resource.state = DEPROVISIONED
    db_session.commit()
    assert authenticate(db_session, issued.username, issued.key) is None


def test_revoked_credentials_stop_working(db_session, settings, resource):
    issued = issue_credential(db_session, settings, resource)
    revoke_all(resource)
    db_session.commit()
    assert authenticate(db_session, issued.username, issued.key) is None
    assert current_credential(resource) is None
    assert db_session.query(Credential).one().key_enc is None


def test_a_retiring_key_authenticates_until_its_grace_period_ends(db_session, settings, resource):
    old = issue_credential(db_session, settings, resource)
    retiring = db_session.query(Credential).filter_by(username=old.username).one()
    retiring.expires_at = utcnow() + timedelta(hours=1)
    new = issue_credential(db_session, settings, resource)
    db_session.commit()
    assert authenticate(db_session, new.username, new.key) is resource
    assert authenticate(db_session, old.username, old.key) is resource
    later = utcnow() + timedelta(hours=2)
    assert authenticate(db_session, old.username, old.key, now=later) is None
    assert authenticate(db_session, new.username, new.key, now=later) is resource


def test_smtp_url_shape(settings):
    url = smtp_url(settings, IssuedCredential("user1", "key1"))
    assert (
        url
        == f"smtp://user1:key1@{settings.smtp_public_host}:{settings.smtp_public_port}?starttls=true"
    )
