"""The provisioning service without HTTP: the uuid race, config stability, request parsing."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, func, select, text

from provider.db import session_factory
from provider.models import Credential, Resource
from provider.plans import PLANS, UnknownPlan
from provider.services.partner_requests import (
    InvalidRequest,
    MalformedBody,
    json_object,
    provision_request,
    region_from,
    resource_id,
)
from provider.services.provisioning import config_for, provision

from .partner import provision_body


def _wait_for_a_lock_waiter(session) -> None:
    for _ in range(500):
        waiting = session.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        )
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the second provision never waited on the first one's row")


def test_a_concurrent_post_of_the_same_uuid_loses_the_primary_key_race_and_answers_as_a_repeat(
    settings, db_session
):
    request = provision_request(provision_body())
    factory = session_factory(settings.database_url)
    first_session, second_session = factory(), factory()
    first_may_commit, first_at_commit = threading.Event(), threading.Event()

    def hold_commit(_session) -> None:
        first_at_commit.set()
        first_may_commit.wait(30)

    event.listen(first_session, "before_commit", hold_commit)
    answers = {}

    def run(name, session):
        answers[name] = provision(session, settings, request)
        session.close()

    first = threading.Thread(target=run, args=("first", first_session))
    first.start()
    assert first_at_commit.wait(30)
    second = threading.Thread(target=run, args=("second", second_session))
    second.start()
    _wait_for_a_lock_waiter(db_session)
    first_may_commit.set()
    first.join(30)
    second.join(30)
    assert answers["first"].created and not answers["second"].created
    assert answers["first"].config == answers["second"].config
    assert db_session.scalar(select(func.count()).select_from(Resource)) == 1
    assert db_session.scalar(select(func.count()).select_from(Credential)) == 1


def test_config_for_issues_a_credential_when_none_is_live(settings, db_session):
    answer = provision(db_session, settings, provision_request(provision_body()))
    resource = db_session.get(Resource, answer.resource_id)
    for credential in resource.credentials:
        credential.revoked_at = credential.created_at
    config = config_for(db_session, settings, resource)
    assert config["CLOUDMAILIN_SMTP_URL"] != answer.config["CLOUDMAILIN_SMTP_URL"]
    assert config["CLOUDMAILIN_FORWARD_ADDRESS"] == answer.config["CLOUDMAILIN_FORWARD_ADDRESS"]


def test_json_object_parses_any_content_and_refuses_non_objects():
    assert json_object(b'{"a": 1}') == {"a": 1}
    for raw in (b"", b"  ", b"[]", b"1", b"{", b"\x80"):
        with pytest.raises(MalformedBody):
            json_object(raw)


def test_resource_id_is_canonical_lower_case():
    assert (
        resource_id("01234567-89AB-CDEF-0123-456789ABCDEF")
        == "01234567-89ab-cdef-0123-456789abcdef"
    )
    with pytest.raises(InvalidRequest):
        resource_id("urn:uuid:01234567-89ab-cdef-0123-456789abcdef")


@pytest.mark.parametrize(
    ("given", "stored"),
    [(None, "us"), ("us", "us"), ("EU", "eu"), ("amazon-web-services::us-east-1", "us")],
)
def test_region_names(given, stored):
    assert region_from(given) == stored


def test_provision_request_reads_the_grant_and_its_expiry():
    request = provision_request(provision_body())
    assert request.oauth_grant is not None
    assert request.oauth_grant.code == "grant-code-123"
    assert (
        request.oauth_grant.expires_at is not None
        and request.oauth_grant.expires_at.utcoffset() is not None
    )
    assert request.plan == PLANS["starter"]


def test_provision_request_refuses_an_unknown_plan():
    with pytest.raises(UnknownPlan):
        provision_request(provision_body(plan="gold"))


def test_an_expiry_without_a_zone_is_taken_as_utc():
    request = provision_request(
        provision_body(oauth_grant={"code": "c", "expires_at": "2099-01-01T00:00:00"})
    )
    assert request.oauth_grant is not None and request.oauth_grant.expires_at.tzname() == "UTC"
