"""Sending remembers a verified API key for a few seconds (credentials.CredentialCache), and
nothing it answers differs from checking the key every time."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provider.models import OutboundMessage, OutboundRecipient, Resource
from provider.models.base import utcnow
from provider.services import credentials
from provider.services.credentials import CredentialCache
from provider.services.provisioning import stop_resource
from provider.settings import Settings

from .conftest import SENDING_DOMAIN, Account

MESSAGE = {"from": f"orders@{SENDING_DOMAIN}", "to": "ann@example.com", "plain": "Thanks!"}


def _post(client: FlaskClient, account: Account):
    return client.post(account.path(), json=MESSAGE, headers=account.auth)


def _stored(db_session: Session, account: Account) -> int:
    db_session.rollback()
    count = select(func.count()).select_from(OutboundMessage).where(
        OutboundMessage.resource_id == account.resource_id)
    return int(db_session.scalar(count) or 0)


def test_a_wrong_key_is_401_even_after_the_right_one_was_remembered(
    client: FlaskClient, account: Account
) -> None:
    assert _post(client, account).status_code == 202
    wrong = dataclasses.replace(account, key=account.key[:-1] + ("0" if account.key[-1] != "0" else "1"))
    assert _post(client, wrong).json == {"status": 401, "error": "Unauthorized"}
    assert _post(client, account).status_code == 202


def test_a_resource_deprovisioned_after_its_key_was_remembered_sends_nothing(
    client: FlaskClient, account: Account, db_session: Session, settings: Settings
) -> None:
    assert _post(client, account).status_code == 202
    resource = db_session.get(Resource, account.resource_id)
    assert resource is not None
    stop_resource(db_session, settings, resource, "removed")
    db_session.commit()
    assert _post(client, account).json == {"status": 401, "error": "Unauthorized"}
    assert _stored(db_session, account) == 1


def test_a_plan_change_applies_to_the_next_message_at_once(
    client: FlaskClient, account: Account, db_session: Session
) -> None:
    assert _post(client, account).status_code == 202
    resource = db_session.get(Resource, account.resource_id)
    assert resource is not None
    resource.plan = "test"
    db_session.commit()
    answer = _post(client, account)
    assert answer.status_code == 202 and answer.json["test_mode"] is True
    state = select(OutboundRecipient.state).where(OutboundRecipient.message_id == answer.json["id"])
    assert db_session.scalar(state) == "test"


def test_a_remembered_key_in_its_rotation_grace_is_not_trusted_past_it(
    db_session: Session, settings: Settings, account: Account
) -> None:
    now = utcnow()
    resource = db_session.get(Resource, account.resource_id)
    assert resource is not None
    credentials.rotate(db_session, settings, resource, grace=timedelta(minutes=1), now=now)
    db_session.commit()
    cache = CredentialCache(seconds=3600)
    assert cache.resource_id(db_session, account.username, account.key, now=now) == account.resource_id
    later = now + timedelta(minutes=2)
    assert cache.resource_id(db_session, account.username, account.key, now=later) is None
