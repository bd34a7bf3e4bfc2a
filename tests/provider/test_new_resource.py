"""A new add-on's rows are written by one INSERT, all or nothing, and look exactly as the ORM
would write them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from provider.models import Address, AppLogLine, Credential, Resource
from provider.models.address import DEFAULT_FORMAT
from provider.services.partner_requests import provision_request
from provider.services.provisioning import provision
from provider.tasks import RqJobQueue

from .partner import TARGET, provision_body


def _request():
    return provision_request(provision_body(options={"target": TARGET}))


def test_the_rows_are_written_all_or_nothing(settings, db_session, monkeypatch):
    """One statement: when one of its rows is refused (here an address whose local id is taken),
    the resource, credential and log line beside it are not kept either."""
    first = provision(db_session, settings, _request(), RqJobQueue(settings.redis_url))
    taken = db_session.scalars(select(Address.local_id)).one()
    db_session.rollback()  # provisioning starts the session's transaction itself
    monkeypatch.setattr("provider.services.addresses.new_local_id", lambda: taken)
    request = provision_request(provision_body(options={"target": TARGET}))
    with pytest.raises(IntegrityError):
        provision(db_session, settings, request, RqJobQueue(settings.redis_url))
    db_session.rollback()
    assert db_session.get(Resource, request.uuid) is None
    assert db_session.scalars(select(Resource.id)).all() == [first.resource_id]
    assert len(db_session.scalars(select(Credential.id)).all()) == 1
    assert db_session.scalars(select(AppLogLine.resource_id)).all() == [first.resource_id]


def test_the_rows_carry_every_column_the_models_default(settings, db_session):
    answer = provision(db_session, settings, _request(), RqJobQueue(settings.redis_url))
    resource = db_session.get(Resource, answer.resource_id)
    assert resource is not None and resource.created_at and resource.updated_at
    assert resource.options == {} and resource.oauth_grant_enc is not None
    address = db_session.scalars(select(Address).where(Address.resource_id == resource.id)).one()
    assert (address.format, address.size_as_string, address.target_url) == (DEFAULT_FORMAT, False, TARGET)
    assert address.created_at == resource.created_at and address.signing_secret_enc
    credential = db_session.scalars(select(Credential).where(Credential.resource_id == resource.id)).one()
    assert credential.username in answer.config["CLOUDMAILIN_SMTP_URL"]
    assert credential.expires_at is None and credential.revoked_at is None
    assert answer.config["CLOUDMAILIN_FORWARD_ADDRESS"].startswith(address.local_id + "@")


def test_an_add_on_without_a_log_input_url_gets_no_log_line(settings, db_session):
    queue = RqJobQueue(settings.redis_url)
    with_log = provision(db_session, settings, provision_request(provision_body()), queue)
    body = provision_body()
    body.pop("log_input_url", None)
    without_log = provision(db_session, settings, provision_request(body), queue)
    lines = db_session.scalars(select(AppLogLine.resource_id)).all()
    assert lines == [with_log.resource_id]
    assert without_log.resource_id not in lines
