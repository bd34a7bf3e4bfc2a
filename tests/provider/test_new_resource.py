"""A new add-on's rows are written by one INSERT and look exactly as the ORM would write them."""

from __future__ import annotations

from sqlalchemy import event, select

from provider.models import Address, AppLogLine, Credential, Resource
from provider.models.address import DEFAULT_FORMAT
from provider.services.partner_requests import provision_request
from provider.services.provisioning import provision

from .partner import TARGET, provision_body


def _statements_during(session, action) -> list[str]:
    seen: list[str] = []
    engine = session.get_bind()

    def record(_conn, _cursor, statement, *_rest) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_a_new_add_on_costs_one_insert_statement(settings, db_session):
    request = provision_request(provision_body(options={"target": TARGET}))
    statements = _statements_during(db_session, lambda: provision(db_session, settings, request))
    inserts = [s for s in statements if "INSERT" in s]
    assert len(inserts) == 1 and inserts[0].lstrip().startswith("WITH")


def test_the_rows_carry_every_column_the_models_default(settings, db_session):
    answer = provision(db_session, settings, provision_request(provision_body(options={"target": TARGET})))
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
    with_log = provision(db_session, settings, provision_request(provision_body()))
    body = provision_body()
    body.pop("log_input_url", None)
    without_log = provision(db_session, settings, provision_request(body))
    lines = db_session.scalars(select(AppLogLine.resource_id)).all()
    assert lines == [with_log.resource_id]
    assert without_log.resource_id not in lines
