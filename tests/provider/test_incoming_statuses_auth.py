"""The `dkim` and `dmarc` filters of GET /api/v0.1/<username>/incoming_statuses."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provider.models import Resource
from provider.models.resource import PROVISIONED
from provider.services.credentials import IssuedCredential, issue_credential
from provider.services.history import Delivery
from provider.settings import Settings
from tests.domain_rows import create_address, record_delivery


@pytest.fixture
def account(db_session: Session, settings: Settings) -> IssuedCredential:
    resource = Resource(id=str(uuid.uuid4()), plan="starter", state=PROVISIONED)
    db_session.add(resource)
    address = create_address(db_session, settings, resource, "https://app.example/mail")
    credential = issue_credential(db_session, settings, resource)
    db_session.flush()
    for subject, dkim, dmarc in [("signed", "pass", "pass"), ("spoof", "fail", "fail"),
                                 ("refused at RCPT", None, None), ("plain", "none", "none")]:
        record_delivery(db_session, Delivery(
            resource_id=resource.id, address_id=address.id, envelope_from="a@sender.example",
            envelope_to="box@cloudmailin.test", status="201", smtp_reply="250 2.0.0 OK",
            subject=subject, dkim_result=dkim, dmarc_result=dmarc,
        ))
    db_session.commit()
    return credential


def get(client: FlaskClient, credential: IssuedCredential, query: str) -> tuple[int, dict]:
    response = client.get(
        f"/api/v0.1/{credential.username}/incoming_statuses?{query}",
        headers={"Authorization": f"Bearer {credential.key}"},
    )
    return response.status_code, response.get_json()


def subjects(client: FlaskClient, credential: IssuedCredential, query: str) -> list[str]:
    status, body = get(client, credential, query)
    assert status == 200, body
    return sorted(item["subject"] for item in body["incoming_statuses"])


def test_dkim_and_dmarc_filter_by_the_recorded_result(
    client: FlaskClient, account: IssuedCredential
) -> None:
    assert subjects(client, account, "dkim=pass") == ["signed"]
    assert subjects(client, account, "dmarc=fail") == ["spoof"]
    assert subjects(client, account, "dkim=none") == ["plain"]
    assert subjects(client, account, "dkim=PASS") == ["signed"]  # any case
    assert subjects(client, account, "dkim=") == ["plain", "refused at RCPT", "signed", "spoof"]


def test_each_row_shows_its_dkim_and_dmarc_results(
    client: FlaskClient, account: IssuedCredential
) -> None:
    _, body = get(client, account, "")
    shown = {item["subject"]: (item["dkim"], item["dmarc"]) for item in body["incoming_statuses"]}
    assert shown["signed"] == ("pass", "pass")
    assert shown["refused at RCPT"] == (None, None)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("dkim=softfail", "dkim must be one of none, pass, fail, neutral, temperror, permerror"),
        ("dmarc=quarantine", "dmarc must be one of none, pass, fail, temperror, permerror"),
        ("dmarc=pa%00ss", "dmarc must not contain NUL characters"),
    ],
)
def test_an_unknown_result_is_a_422_naming_the_values(
    client: FlaskClient, account: IssuedCredential, query: str, error: str
) -> None:
    assert get(client, account, query) == (422, {"status": 422, "error": error})
