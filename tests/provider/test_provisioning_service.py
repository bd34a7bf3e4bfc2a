"""The provisioning service without HTTP: the uuid race, config stability, request parsing."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

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
from provider.tasks import RqJobQueue

from .partner import provision_body


def test_concurrent_posts_of_the_same_uuid_make_one_resource_and_answer_alike(settings, db_session):
    """Heroku retries while the first POST is still running: every racer but one loses the
    primary-key race (waiting for the winner's INSERT, then failing on it) and answers as a repeat."""
    request = provision_request(provision_body())
    factory = session_factory(settings.database_url)
    racers = 8
    start = threading.Barrier(racers)
    answers = []

    def run() -> None:
        session = factory()
        try:
            start.wait(10)
            answers.append(provision(session, settings, request, RqJobQueue(settings.redis_url)))
        finally:
            session.close()

    threads = [threading.Thread(target=run) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == racers
    assert sum(answer.created for answer in answers) == 1
    assert len({repr(sorted(answer.config.items())) for answer in answers}) == 1
    assert {answer.resource_id for answer in answers} == {request.uuid}
    assert db_session.scalar(select(func.count()).select_from(Resource)) == 1
    assert db_session.scalar(select(func.count()).select_from(Credential)) == 1


def test_config_for_issues_a_credential_when_none_is_live(settings, db_session):
    queue = RqJobQueue(settings.redis_url)
    answer = provision(db_session, settings, provision_request(provision_body()), queue)
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
