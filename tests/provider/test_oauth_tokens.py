"""Tokens on the resource row, exchanged and refreshed against the stand-in's OAuth endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from provider.crypto import SecretBox
from provider.services import oauth_tokens
from provider.services.oauth_tokens import GrantUnavailable
from provider.settings import Settings
from tests.heroku_side import ReadingPlatformAPI, add_resource, heroku_side, seed_addon, token_calls
from tests.heroku_standin import RunningStandin


@pytest.fixture
def heroku(settings: Settings) -> Iterator[tuple[RunningStandin, Settings]]:
    with heroku_side(settings) as pair:
        yield pair


def test_exchange_stores_the_tokens_encrypted_and_drops_the_used_grant(heroku, db_session):
    running, settings = heroku
    resource = add_resource(db_session, settings, seed_addon(running))
    assert oauth_tokens.exchange_grant(db_session, settings, resource) is True
    db_session.commit()
    db_session.expire_all()
    assert resource.oauth_grant_enc is None and resource.oauth_grant_expires_at is None
    assert resource.access_token_enc is not None and b"HRKU" not in resource.access_token_enc
    access = SecretBox(settings.encryption_key).decrypt(resource.access_token_enc)
    assert ReadingPlatformAPI(settings, access).get_addon(resource.id)["id"] == resource.id


def test_a_second_exchange_keeps_the_one_token_set_and_calls_nobody(heroku, db_session):
    running, settings = heroku
    resource = add_resource(db_session, settings, seed_addon(running))
    oauth_tokens.exchange_grant(db_session, settings, resource)
    stored = resource.access_token_enc
    assert oauth_tokens.exchange_grant(db_session, settings, resource) is False
    assert resource.access_token_enc == stored
    assert token_calls(running) == 1


def test_a_grant_past_its_expiry_is_not_sent(heroku, db_session):
    running, settings = heroku
    resource = add_resource(db_session, settings, seed_addon(running))
    later = resource.oauth_grant_expires_at + timedelta(seconds=1)
    with pytest.raises(GrantUnavailable):
        oauth_tokens.exchange_grant(db_session, settings, resource, now=later)
    assert token_calls(running) == 0


def test_a_resource_without_a_grant_has_nothing_to_exchange(heroku, db_session):
    running, settings = heroku
    resource = add_resource(db_session, settings, seed_addon(running), grant=False)
    with pytest.raises(GrantUnavailable):
        oauth_tokens.exchange_grant(db_session, settings, resource)


def test_access_token_is_refreshed_within_a_minute_of_expiry(heroku, db_session):
    running, settings = heroku
    resource = add_resource(db_session, settings, seed_addon(running))
    oauth_tokens.exchange_grant(db_session, settings, resource)
    box = SecretBox(settings.encryption_key)
    old = box.decrypt(resource.access_token_enc)
    soon = resource.access_token_expires_at - timedelta(seconds=50)
    fresh = oauth_tokens.access_token(db_session, settings, resource, now=soon)
    assert fresh != old
    assert box.decrypt(resource.access_token_enc) == fresh
    assert resource.access_token_expires_at > datetime.now(UTC) + timedelta(hours=7)
    assert token_calls(running, "refresh_token") == 1


def test_access_token_with_time_left_is_used_as_is(heroku, db_session):
    running, settings = heroku
    resource = add_resource(db_session, settings, seed_addon(running))
    oauth_tokens.exchange_grant(db_session, settings, resource)
    stored = SecretBox(settings.encryption_key).decrypt(resource.access_token_enc)
    assert oauth_tokens.access_token(db_session, settings, resource) == stored
    assert token_calls(running, "refresh_token") == 0


def test_forget_tokens_leaves_no_secret_on_the_row(heroku, db_session):
    running, settings = heroku
    resource = add_resource(db_session, settings, seed_addon(running))
    oauth_tokens.exchange_grant(db_session, settings, resource)
    oauth_tokens.forget_tokens(resource)
    assert not oauth_tokens.has_tokens(resource)
    with pytest.raises(GrantUnavailable):
        oauth_tokens.access_token(db_session, settings, resource)
