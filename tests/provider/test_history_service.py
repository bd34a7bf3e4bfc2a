"""The inbound history read through its service with a plain mapping of parameters, as the API
view and the dashboard both call it: no request object, named errors for bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from provider.models import Resource
from provider.models.resource import PROVISIONED
from provider.services.history import Delivery, read_history
from provider.services.paging import InvalidCursor, InvalidQuery, next_page_params
from tests.domain_rows import record_delivery

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _resource_with_history(db_session: Session, count: int) -> str:
    resource = Resource(id=str(uuid.uuid4()), plan="starter", state=PROVISIONED)
    db_session.add(resource)
    db_session.flush()
    for minute in range(count):
        record_delivery(db_session, Delivery(
            resource_id=resource.id, address_id=None, envelope_from="a@sender.example",
            envelope_to="box@cloudmailin.test", status="201", smtp_reply="250 ok",
            subject=f"message {minute}", received_at=T0 + timedelta(minutes=minute),
        ))
    db_session.commit()
    return resource.id


def test_pages_of_a_plain_mapping_follow_their_cursors_to_the_end(db_session: Session) -> None:
    resource_id = _resource_with_history(db_session, 5)
    params: dict[str, str] = {"limit": "2", "from": "sender"}
    seen: list[str] = []
    while True:
        page = read_history(db_session, resource_id, params)
        seen += [item["subject"] for item in page.items]
        if page.next_cursor is None:
            break
        params = next_page_params(params, page.next_cursor)
        assert params["from"] == "sender" and params["limit"] == "2"
    assert seen == [f"message {n}" for n in (4, 3, 2, 1, 0)]
    assert page.items[-1]["received_at"] == "2026-03-10T12:00:00Z"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 100"),
        ({"to": "a\x00"}, "to must not contain NUL characters"),
        ({"since": "2026-03-02", "until": "2026-03-01"}, "since must be before until"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor is not one this API returned"),
    ],
)
def test_bad_parameters_raise_the_named_error_saying_what_is_wrong(
    db_session: Session, params: dict[str, str], error: str
) -> None:
    resource_id = _resource_with_history(db_session, 1)
    with pytest.raises(InvalidQuery) as raised:
        read_history(db_session, resource_id, params)
    assert str(raised.value) == error
    assert isinstance(raised.value, InvalidCursor) == ("cursor" in params)
