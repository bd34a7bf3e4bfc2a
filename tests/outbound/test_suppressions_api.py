"""GET /api/v0.1/<username>/suppressions and DELETE .../suppressions/<address>."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.models import OutboundRecipient, Suppression
from provider.models.base import utcnow
from provider.settings import Settings

from .conftest import SENDING_DOMAIN, Account, new_account

MESSAGE = {"from": f"orders@{SENDING_DOMAIN}", "to": "gone@remote.example", "subject": "Hi", "plain": "Hi"}


def _suppress(db_session: Session, account: Account, *addresses: str) -> None:
    now = utcnow()
    for age, address in enumerate(addresses):
        db_session.add(Suppression(resource_id=account.resource_id, address=address,
                                   reason="550 5.1.1 No such user", created_at=now - timedelta(minutes=age)))
    db_session.commit()


def _state_of_new_message(client: FlaskClient, account: Account, db_session: Session) -> str:
    response = client.post(account.path(), json=MESSAGE, headers=account.auth)
    assert response.status_code == 202, response.json
    db_session.expire_all()
    row = db_session.scalar(select(OutboundRecipient).where(
        OutboundRecipient.message_id == response.json["id"]))
    assert row is not None
    return row.state


def test_the_list_is_newest_first_in_pages(
    client: FlaskClient, account: Account, db_session: Session
) -> None:
    _suppress(db_session, account, "new@remote.example", "mid@remote.example", "old@remote.example")

    first = client.get(account.path("suppressions?limit=2"), headers=account.auth)
    assert first.status_code == 200
    assert [e["address"] for e in first.json["suppressions"]] == ["new@remote.example", "mid@remote.example"]
    assert first.json["suppressions"][0]["reason"] == "550 5.1.1 No such user"
    assert first.json["suppressions"][0]["created_at"].endswith("Z")
    assert first.headers["Link"] == f'<{first.json["next"]}>; rel="next"'
    second = client.get(first.json["next"], headers=account.auth)
    assert [e["address"] for e in second.json["suppressions"]] == ["old@remote.example"]
    assert "next" not in second.json and "Link" not in second.headers


def test_after_removal_a_new_message_to_the_address_is_queued_not_suppressed(
    client: FlaskClient, account: Account, db_session: Session
) -> None:
    _suppress(db_session, account, "gone@remote.example")
    assert _state_of_new_message(client, account, db_session) == "suppressed"

    removed = client.delete(account.path("suppressions/Gone%40Remote.example"), headers=account.auth)

    assert (removed.status_code, removed.data) == (204, b"")
    assert client.get(account.path("suppressions"), headers=account.auth).json == {"suppressions": []}
    assert _state_of_new_message(client, account, db_session) == "queued"


def test_removing_an_address_that_is_not_on_the_list_answers_404(
    client: FlaskClient, account: Account, db_session: Session, settings: Settings
) -> None:
    other = new_account(db_session, settings, domain=None)
    _suppress(db_session, other, "theirs@remote.example")

    for address in ("nobody@remote.example", "theirs@remote.example"):
        response = client.delete(account.path(f"suppressions/{address}"), headers=account.auth)
        assert response.status_code == 404
        assert response.json == {"status": 404, "error": f"{address} is not on the suppression list"}
    assert client.get(other.path("suppressions"), headers=other.auth).json["suppressions"][0]["address"] == (
        "theirs@remote.example")


def test_the_list_needs_the_key_and_a_cursor_it_gave(client: FlaskClient, account: Account) -> None:
    assert client.get(account.path("suppressions")).status_code == 401
    assert client.delete(account.path("suppressions/a@b.example")).status_code == 401
    bad = client.get(account.path("suppressions?cursor=nonsense"), headers=account.auth)
    assert bad.status_code == 422 and bad.json["error"] == "cursor is not one this API returned"
    assert client.get(account.path("suppressions?limit=0"), headers=account.auth).status_code == 422
