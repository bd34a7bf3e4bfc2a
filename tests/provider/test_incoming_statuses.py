"""GET /api/v0.1/<username>/incoming_statuses: the inbound history over the customer API."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provider.models import Resource
from provider.models.resource import DEPROVISIONED, PROVISIONED
from provider.services.credentials import IssuedCredential, issue_credential
from provider.services.history import Delivery
from provider.settings import Settings
from tests.domain_rows import create_address, record_delivery

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def new_resource(db_session: Session, settings: Settings) -> tuple[Resource, IssuedCredential]:
    resource = Resource(id=str(uuid.uuid4()), plan="starter", state=PROVISIONED)
    db_session.add(resource)
    create_address(db_session, settings, resource, "https://user:secret@app.example/mail")
    credential = issue_credential(db_session, settings, resource)
    db_session.commit()
    return resource, credential


@pytest.fixture
def account(db_session: Session, settings: Settings) -> tuple[Resource, IssuedCredential]:
    return new_resource(db_session, settings)


@pytest.fixture
def deliver(db_session: Session, account: tuple[Resource, IssuedCredential]) -> Callable[..., None]:
    resource, _ = account

    def add(minutes: int, **fields: Any) -> None:
        values: dict[str, Any] = {
            "resource_id": resource.id,
            "address_id": resource.addresses[0].id,
            "envelope_from": "alice@sender.example",
            "envelope_to": "box@cloudmailin.test",
            "status": "201",
            "http_status": 201,
            "smtp_reply": "250 2.0.0 Message accepted by the target (HTTP 201)",
            "subject": f"message {minutes}",
            "received_at": T0 + timedelta(minutes=minutes),
            "target_url": "https://user:secret@app.example/mail",
        }
        values.update(fields)
        record_delivery(db_session, Delivery(**values))
        db_session.commit()

    return add


def get(
    client: FlaskClient, credential: IssuedCredential, query: str = "", key: str | None = None
) -> Any:
    return client.get(
        f"/api/v0.1/{credential.username}/incoming_statuses{query}",
        headers={"Authorization": f"Bearer {key or credential.key}"},
    )


def subjects(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["subject"] for item in response.get_json()["incoming_statuses"]]


def test_the_history_comes_newest_first_with_what_the_spec_records(
    client: FlaskClient, account: tuple[Resource, IssuedCredential], deliver: Callable[..., None]
) -> None:
    _, credential = account
    deliver(1)
    deliver(
        2,
        status="404",
        http_status=404,
        smtp_reply="550 5.0.0 Target rejected the message (HTTP 404): nope",
        response_body="nope",
        target_ms=84,
        message_id="<m2@sender.example>",
        size=1234,
        spf_result="pass",
        dkim_result="pass",
        dmarc_result="fail",
        tls=True,
        remote_ip="192.0.2.7",
        recipients=["box@cloudmailin.test", "box+x@cloudmailin.test"],
    )
    response = get(client, credential)
    assert response.status_code == 200
    body = response.get_json()
    assert [item["subject"] for item in body["incoming_statuses"]] == ["message 2", "message 1"]
    assert body["incoming_statuses"][0] == {
        "id": body["incoming_statuses"][0]["id"],
        "received_at": "2026-03-10T12:02:00Z",
        "status": "404",
        "http_status": 404,
        "from": "alice@sender.example",
        "to": "box@cloudmailin.test",
        "recipients": ["box@cloudmailin.test", "box+x@cloudmailin.test"],
        "message_id": "<m2@sender.example>",
        "subject": "message 2",
        "size": 1234,
        "spf": "pass",
        "dkim": "pass",
        "dmarc": "fail",
        "tls": True,
        "remote_ip": "192.0.2.7",
        "target_url": "https://user:•••@app.example/mail",
        "smtp_reply": "550 5.0.0 Target rejected the message (HTTP 404): nope",
        "response_body": "nope",
        "target_ms": 84,
        "resent_from_id": None,
    }
    assert "next" not in body and "Link" not in response.headers


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?status=rejected_quota", ["message 3"]),
        ("?to=OTHER", ["message 2"]),
        ("?from=bob%40", ["message 3"]),
        ("?subject=MESSAGE%201", ["message 1"]),
        ("?since=2026-03-10T12:02:00Z", ["message 3", "message 2"]),
        ("?until=2026-03-10T12:02:00%2B00:00", ["message 1"]),
        ("?since=2026-03-10&until=2026-03-10", ["message 3", "message 2", "message 1"]),
        ("?until=2026-03-09", []),
        ("?subject=100%25", []),
        ("?status=201&to=box", ["message 1"]),
        ("?to=cc-copy", ["message 2"]),
    ],
)
def test_filters(
    query: str,
    expected: list[str],
    client: FlaskClient,
    account: tuple[Resource, IssuedCredential],
    deliver: Callable[..., None],
) -> None:
    deliver(1)
    deliver(2, envelope_to="other@cloudmailin.test",
            recipients=["other@cloudmailin.test", "cc-copy@cloudmailin.test"])
    deliver(3, status="rejected_quota", http_status=None, envelope_from="bob@sender.example")
    assert subjects(get(client, account[1], query)) == expected


def test_pages_follow_the_next_link_until_the_end(
    client: FlaskClient, account: tuple[Resource, IssuedCredential], deliver: Callable[..., None]
) -> None:
    for minute in range(5):
        deliver(minute)
    deliver(2, subject="same time as message 2")
    seen: list[str] = []
    response = get(client, account[1], "?limit=2&status=201")
    while True:
        seen += subjects(response)
        body = response.get_json()
        if "next" not in body:
            break
        assert response.headers["Link"] == f'<{body["next"]}>; rel="next"'
        assert "status=201" in body["next"] and "limit=2" in body["next"]
        response = client.get(body["next"], headers={"Authorization": f"Bearer {account[1].key}"})
    assert seen == [
        "message 4",
        "message 3",
        "same time as message 2",
        "message 2",
        "message 1",
        "message 0",
    ]


def test_another_accounts_history_is_never_shown(
    client: FlaskClient,
    db_session: Session,
    settings: Settings,
    account: tuple[Resource, IssuedCredential],
    deliver: Callable[..., None],
) -> None:
    deliver(1)
    _, other = new_resource(db_session, settings)
    assert subjects(get(client, other)) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dXNlcjprZXk="},
        {"Authorization": "Bearer "},
    ],
)
def test_a_missing_or_wrong_key_is_401_in_the_api_error_shape(
    headers: dict[str, str], client: FlaskClient, account: tuple[Resource, IssuedCredential]
) -> None:
    response = client.get(f"/api/v0.1/{account[1].username}/incoming_statuses", headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"status": 401, "error": "Unauthorized"}


def test_the_key_only_opens_its_own_username(
    client: FlaskClient,
    db_session: Session,
    settings: Settings,
    account: tuple[Resource, IssuedCredential],
) -> None:
    _, other = new_resource(db_session, settings)
    response = client.get(
        f"/api/v0.1/{other.username}/incoming_statuses",
        headers={"Authorization": f"Bearer {account[1].key}"},
    )
    assert response.status_code == 401


def test_a_deprovisioned_account_cannot_read_its_history(
    client: FlaskClient, db_session: Session, account: tuple[Resource, IssuedCredential]
) -> None:
    resource, credential = account
    resource.state = DEPROVISIONED
    db_session.commit()
    assert get(client, credential).status_code == 401


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("?limit=0", "limit must be a whole number from 1 to 100"),
        ("?limit=101", "limit must be a whole number from 1 to 100"),
        ("?limit=ten", "limit must be a whole number from 1 to 100"),
        ("?cursor=bm90IGEgY3Vyc29y", "cursor is not one this API returned"),
        ("?cursor=%25%25", "cursor is not one this API returned"),
        (
            "?since=yesterday",
            "since must be an ISO 8601 date or date-time, such as 2024-05-01 or "
            "2024-05-01T12:00:00Z",
        ),
        ("?since=2026-03-02&until=2026-03-01", "since must be before until"),
        ("?subject=" + "x" * 999, "subject is longer than 998 characters"),
        ("?to=box%00", "to must not contain NUL characters"),
        ("?from=%00alice", "from must not contain NUL characters"),
        ("?subject=a%00b", "subject must not contain NUL characters"),
        ("?status=201%00", "status must not contain NUL characters"),
        ("?limit=%C2%B2", "limit must be a whole number from 1 to 100"),  # a superscript two
        ("?cursor=" + _cursor("2026-03-10T12:00:00+00:00|9223372036854775808"),
         "cursor is not one this API returned"),
        ("?cursor=" + _cursor("2026-03-10T12:00:00+00:00|-99999999999999999999"),
         "cursor is not one this API returned"),
    ],
)
def test_bad_parameters_get_a_422_saying_what_is_wrong(
    query: str, error: str, client: FlaskClient, account: tuple[Resource, IssuedCredential]
) -> None:
    response = get(client, account[1], query)
    assert response.status_code == 422
    assert response.get_json() == {"status": 422, "error": error}


def test_a_cursor_at_the_largest_row_id_is_accepted(
    client: FlaskClient, account: tuple[Resource, IssuedCredential], deliver: Callable[..., None]
) -> None:
    deliver(1)
    cursor = _cursor("2026-03-10T12:01:00+00:00|9223372036854775807")
    assert subjects(get(client, account[1], f"?cursor={cursor}")) == ["message 1"]


def test_until_the_last_day_of_the_calendar_bounds_nothing(
    client: FlaskClient, account: tuple[Resource, IssuedCredential], deliver: Callable[..., None]
) -> None:
    deliver(1)
    assert subjects(get(client, account[1], "?until=9999-12-31")) == ["message 1"]


@pytest.mark.parametrize("username", ["box%00", "%00"])
def test_a_username_with_a_nul_is_401_like_any_unknown_one(
    username: str, client: FlaskClient, account: tuple[Resource, IssuedCredential]
) -> None:
    response = client.get(
        f"/api/v0.1/{username}/incoming_statuses",
        headers={"Authorization": f"Bearer {account[1].key}"},
    )
    assert response.status_code == 401
    assert response.get_json() == {"status": 401, "error": "Unauthorized"}
