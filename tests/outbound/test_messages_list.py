"""GET /api/v0.1/<username>/messages: the outbound history, newest first, filtered and paged as
incoming_statuses is, each message as GET .../messages/<id> shows it (without events)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from provider.models import OutboundMessage, OutboundRecipient
from provider.settings import Settings

from .conftest import Account, new_account

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
Add = Callable[..., uuid.UUID]


def add_message(db_session: Session, account: Account, minutes: int, recipients: dict[str, str],
                *, tags: tuple[str, ...] = ("api",), subject: str | None = None) -> uuid.UUID:
    """A stored message `minutes` after T0 whose recipients are in the given states."""
    message_id = uuid.uuid4()
    addresses = list(recipients)
    message = OutboundMessage(
        id=message_id, resource_id=account.resource_id, created_at=T0 + timedelta(minutes=minutes),
        source="api", sender="Shop <orders@shop.example>", sender_domain="shop.example",
        to=addresses[:1], cc=addresses[1:], subject=subject or f"message {minutes}",
        message_id_header=f"<{message_id}@shop.example>", tags=list(tags), priority="standard",
        test_mode=False, size=120, raw=b"From: orders@shop.example\r\n\r\nx\r\n",
    )
    for address, state in recipients.items():
        message.recipients.append(OutboundRecipient(
            resource_id=account.resource_id, address=address, domain=address.split("@")[1],
            state=state, attempts=0 if state == "queued" else 1,
            next_attempt_at=T0 + timedelta(minutes=minutes), last_reply=None,
        ))
    db_session.add(message)
    db_session.commit()
    return message_id


@pytest.fixture
def add(db_session: Session, account: Account) -> Add:
    def adding(minutes: int, recipients: dict[str, str] | None = None, **fields: Any) -> uuid.UUID:
        return add_message(db_session, account, minutes, recipients or {"ann@example.com": "queued"},
                           **fields)
    return adding


def listed(client: FlaskClient, account: Account, query: str = "") -> Any:
    return client.get(account.path("messages") + query, headers=account.auth)


def subjects(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["subject"] for item in response.get_json()["messages"]]


def test_messages_come_newest_first_as_the_status_route_shows_them_without_events(
    client: FlaskClient, account: Account, add: Add
) -> None:
    add(1)
    add(2, {"ann@example.com": "delivered", "Bo@Example.org": "deferred"}, tags=("orders", "api"))
    response = listed(client, account)
    body = response.get_json()
    assert [item["subject"] for item in body["messages"]] == ["message 2", "message 1"]
    assert "next" not in body and "next_cursor" not in body and "Link" not in response.headers
    for item in body["messages"]:
        shown = client.get(account.path(f"messages/{item['id']}"), headers=account.auth).get_json()
        for recipient in shown["recipients"]:
            del recipient["events"]
        assert item == shown
    assert body["messages"][0]["created_at"] == "2026-03-10T12:02:00Z"
    assert [(r["address"], r["state"]) for r in body["messages"][0]["recipients"]] == [
        ("ann@example.com", "delivered"), ("Bo@Example.org", "deferred")
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?state=bounced", ["message 3"]),
        ("?state=queued", ["message 2", "message 1"]),
        ("?to=BO%40example", ["message 3", "message 2"]),
        ("?to=%25", []),
        ("?state=bounced&to=cy", ["message 3"]),
        ("?state=bounced&to=ann", []),  # ann's recipient of message 3 was delivered, cy's bounced
        ("?tag=orders", ["message 2"]),
        ("?tag=order", []),
        ("?since=2026-03-10T12:02:00Z", ["message 3", "message 2"]),
        ("?until=2026-03-10T12:02:00%2B00:00", ["message 1"]),
        ("?since=2026-03-10&until=2026-03-10", ["message 3", "message 2", "message 1"]),
        ("?state=queued&tag=api&since=2026-03-10T12:01:30Z", ["message 2"]),
    ],
)
def test_filters(query: str, expected: list[str], client: FlaskClient, account: Account, add: Add) -> None:
    add(1)
    add(2, {"ann@example.com": "queued", "bo@example.org": "delivered"}, tags=("orders", "api"))
    add(3, {"ann@example.com": "delivered", "bo@example.org": "delivered", "cy@example.com": "bounced"})
    assert subjects(listed(client, account, query)) == expected


def test_pages_follow_the_next_link_until_the_end(client: FlaskClient, account: Account, add: Add) -> None:
    for minute in range(5):
        add(minute)
    add(2, subject="same time as message 2")
    add(3, {"zed@example.com": "bounced"}, subject="filtered out")
    seen: list[str] = []
    response = listed(client, account, "?limit=2&state=queued")
    while True:
        seen += subjects(response)
        body = response.get_json()
        if "next" not in body:
            break
        assert response.headers["Link"] == f'<{body["next"]}>; rel="next"'
        assert "state=queued" in body["next"] and "limit=2" in body["next"]
        assert f"cursor={body['next_cursor']}" in body["next"]
        response = client.get(body["next"], headers=account.auth)
    assert sorted(seen[2:4]) == ["message 2", "same time as message 2"]
    assert seen[:2] + seen[4:] == ["message 4", "message 3", "message 1", "message 0"]


def test_another_accounts_messages_are_never_shown(
    client: FlaskClient, db_session: Session, settings: Settings, account: Account, add: Add
) -> None:
    add(1)
    other = new_account(db_session, settings, domain="other.example")
    assert subjects(listed(client, other)) == []
    assert subjects(listed(client, other, "?to=ann")) == []


def test_a_wrong_key_is_401(client: FlaskClient, account: Account) -> None:
    response = client.get(account.path("messages"), headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.get_json() == {"status": 401, "error": "Unauthorized"}


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("?state=lost", "state must be one of queued, deferred, delivered, bounced, retries_exhausted, "
                        "suppressed, test"),
        ("?limit=101", "limit must be a whole number from 1 to 100"),
        ("?cursor=bm90IGEgY3Vyc29y", "cursor is not one this API returned"),
        # An incoming_statuses cursor (a bigint row id) is not a messages cursor.
        ("?cursor=" + _cursor("2026-03-10T12:00:00+00:00|12"), "cursor is not one this API returned"),
        ("?cursor=" + _cursor("2026-03-10T12:00:00|" + str(uuid.UUID(int=1))),
         "cursor is not one this API returned"),
        ("?since=tomorrow", "since must be an ISO 8601 date or date-time, such as 2024-05-01 or "
                            "2024-05-01T12:00:00Z"),
        ("?since=2026-03-02&until=2026-03-01", "since must be before until"),
        ("?to=ann%00", "to must not contain NUL characters"),
        ("?tag=" + "x" * 999, "tag is longer than 998 characters"),
    ],
)
def test_bad_parameters_get_a_422_saying_what_is_wrong(
    query: str, error: str, client: FlaskClient, account: Account
) -> None:
    response = listed(client, account, query)
    assert response.status_code == 422
    assert response.get_json() == {"status": 422, "error": error}


@pytest.fixture
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "outbound_" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


@pytest.mark.parametrize("query", ["?limit=3", "?limit=30", "?limit=30&state=delivered&to=example"])
def test_a_page_is_two_statements_whatever_its_size(
    query: str, client: FlaskClient, account: Account, add: Add, statements: list[str]
) -> None:
    for minute in range(30):
        add(minute, {"ann@example.com": "delivered", "bo@example.org": "queued", "cy@example.com": "test"})
    statements.clear()
    response = listed(client, account, query)
    assert len(response.get_json()["messages"]) == int(query.split("&")[0].removeprefix("?limit="))
    assert len(statements) == 2, statements


def test_a_page_of_thousands_of_messages_is_read_through_the_account_and_time_index(
    db_session: Session, settings: Settings
) -> None:
    accounts = [new_account(db_session, settings, domain=None) for _ in range(8)]
    for number, account in enumerate(accounts):
        db_session.execute(text(
            "INSERT INTO outbound_messages (id, resource_id, created_at, source, sender, sender_domain,"
            " \"to\", cc, tags, priority, test_mode, size, raw)"
            " SELECT gen_random_uuid(), :r, :t0 + n * interval '1 minute', 'api', 'a@shop.example',"
            " 'shop.example', ARRAY['x@example.com'], '{}', ARRAY['api'], 'standard', false, 10, 'x'"
            " FROM generate_series(1, 500) AS n"), {"r": account.resource_id, "t0": T0})
        db_session.execute(text(
            "INSERT INTO outbound_recipients (message_id, resource_id, address, domain, state,"
            " priority_rank, attempts, updated_at)"
            " SELECT id, resource_id, 'x' || :k || '@example.com', 'example.com', 'delivered', 1, 1, now()"
            " FROM outbound_messages WHERE resource_id = :r"), {"r": account.resource_id, "k": number})
    db_session.commit()
    db_session.execute(text("ANALYZE outbound_messages"))
    db_session.execute(text("ANALYZE outbound_recipients"))
    from provider.services.outbound_history import MessageFilter, messages_query

    query = messages_query(accounts[3].resource_id, MessageFilter()).order_by(
        OutboundMessage.created_at.desc(), OutboundMessage.id.desc()).limit(51)
    compiled = query.compile(db_session.get_bind(), compile_kwargs={"literal_binds": True})
    plan = "\n".join(db_session.scalars(text(f"EXPLAIN {compiled}")))
    assert "ix_outbound_messages_resource_created" in plan, plan
    assert "Seq Scan" not in plan, plan
