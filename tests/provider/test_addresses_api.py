"""The addresses API: GET /api/v0.1/<username>/addresses[/<id>] and PATCH .../addresses/<id>."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from provider.crypto import SecretBox
from provider.db import session_factory
from provider.models import Address, AppLogLine, Resource
from provider.models.resource import DEPROVISIONED, PROVISIONED
from provider.services.credentials import IssuedCredential, issue_credential
from provider.settings import Settings
from tests.domain_rows import create_address

TARGET = "https://user:secret@app.example/mail"


class Account:
    def __init__(self, resource: Resource, credential: IssuedCredential) -> None:
        self.resource_id = resource.id
        self.address_id = resource.addresses[0].id
        self.local_id = resource.addresses[0].local_id
        self.credential = credential

    def url(self, address_id: int | None = None) -> str:
        path = f"/api/v0.1/{self.credential.username}/addresses"
        return path if address_id is None else f"{path}/{address_id}"

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.credential.key}"}


def new_account(db_session: Session, settings: Settings) -> Account:
    resource = Resource(
        id=str(uuid.uuid4()),
        plan="starter",
        state=PROVISIONED,
        log_input_url_enc=SecretBox(settings.encryption_key).encrypt("https://t:t@127.0.0.1:9/logs"),
    )
    db_session.add(resource)
    create_address(db_session, settings, resource, TARGET)
    credential = issue_credential(db_session, settings, resource)
    db_session.commit()
    return Account(resource, credential)


@pytest.fixture
def account(db_session: Session, settings: Settings) -> Account:
    return new_account(db_session, settings)


def patch(client: FlaskClient, account: Account, body: Any, *, address_id: int | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.patch(
        account.url(address_id or account.address_id),
        data=data,
        headers={**account.auth(), "Content-Type": "application/json"},
    )


def stored(db_session: Session, address_id: int) -> Address:
    db_session.expire_all()
    address = db_session.get(Address, address_id)
    assert address is not None
    return address


def refusal(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert set(body) == {"status", "error"} and body["status"] == status
    error: str = body["error"]
    return error


def test_get_lists_the_accounts_addresses_with_the_target_password_masked(
    client: FlaskClient, account: Account
) -> None:
    response = client.get(account.url(), headers=account.auth())
    assert response.status_code == 200
    [address] = response.get_json()["addresses"]
    assert address == {
        "id": account.address_id,
        "address": f"{account.local_id}@cloudmailin.test",
        "target": "https://user:•••@app.example/mail",
        "format": "json",
        "size_as_string": False,
        "store": None,
        "created_at": address["created_at"],
        "updated_at": address["updated_at"],
    }
    assert address["created_at"].endswith("Z")
    one = client.get(account.url(account.address_id), headers=account.auth())
    assert one.get_json() == address


def test_patch_changes_target_format_and_size_as_string_and_answers_the_address(
    client: FlaskClient, account: Account, db_session: Session
) -> None:
    response = patch(
        client,
        account,
        {"target": "https://app.example/v2?token=abc", "format": "multipart", "size_as_string": True},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["target"], body["format"], body["size_as_string"]) == (
        "https://app.example/v2?token=abc", "multipart", True,
    )
    address = stored(db_session, account.address_id)
    assert (address.target_url, address.format, address.size_as_string) == (
        "https://app.example/v2?token=abc", "multipart", True,
    )
    # The app's log says what changed, without the URL (its query may hold a token).
    [line] = [row.message for row in db_session.scalars(select(AppLogLine))]
    changed = "target format=multipart size_as_string=true"
    assert line == f"cloudmailin: address {account.local_id} changed {changed}"


def test_patch_of_one_setting_keeps_the_others(
    client: FlaskClient, account: Account, db_session: Session
) -> None:
    assert patch(client, account, {"format": "raw"}).status_code == 200
    address = stored(db_session, account.address_id)
    assert (address.target_url, address.format, address.size_as_string) == (TARGET, "raw", False)


def test_a_patch_that_changes_nothing_writes_no_log_line(
    client: FlaskClient, account: Account, db_session: Session
) -> None:
    assert patch(client, account, {"format": "json", "size_as_string": False}).status_code == 200
    assert db_session.scalars(select(AppLogLine)).all() == []


@pytest.mark.parametrize("method", ["get", "patch"])
@pytest.mark.parametrize("key", ["wrong", None])
def test_a_wrong_or_missing_key_is_401(
    client: FlaskClient, account: Account, db_session: Session, method: str, key: str | None
) -> None:
    headers = {"Authorization": "Bearer " + "0" * 32} if key else {}
    response = client.open(
        account.url(account.address_id), method=method, data=b'{"format": "raw"}', headers=headers
    )
    assert refusal(response, 401) == "Unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="cloudmailin"'
    assert stored(db_session, account.address_id).format == "json"


def test_another_accounts_address_is_404_like_one_that_does_not_exist(
    client: FlaskClient, account: Account, db_session: Session, settings: Settings
) -> None:
    other = new_account(db_session, settings)
    for address_id in (other.address_id, other.address_id + 1000, 2**31, 10**30):
        assert refusal(patch(client, account, {"format": "raw"}, address_id=address_id), 404) == (
            f"No address {address_id} on this account."
        )
        assert refusal(client.get(account.url(address_id), headers=account.auth()), 404)
    assert stored(db_session, other.address_id).format == "json"
    [listed] = client.get(account.url(), headers=account.auth()).get_json()["addresses"]
    assert listed["id"] == account.address_id


CHOOSE = "choose json, multipart, raw or raw_json."
FIELDS = "target, format, size_as_string and store"
URL_HINT = "give a URL such as https://example.com/incoming_mails."
JSON_HINT = 'Send a JSON object such as {"format": "multipart"}.'


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"format": "xml"}, f"Unknown format 'xml'; {CHOOSE}"),
        ({"format": None}, f"Unknown format None; {CHOOSE}"),
        ({"target": "ftp://app.example/in"}, "The target must be an absolute http:// or https:// URL."),
        (
            {"target": "https://app.example/a b"},
            "The target URL contains spaces or control characters; encode them (%20).",
        ),
        ({"target": 7}, "The target must be a URL such as https://example.com/incoming_mails."),
        (
            {"target": None},
            f"The target cannot be removed (mail to the address would bounce); {URL_HINT}",
        ),
        (
            {"target": "https://user:%E2%80%A2%E2%80%A2%E2%80%A2@app.example/mail"},
            "The target URL's password is the masked one we show (•••); send the real password, "
            "or leave the target out to keep it.",
        ),
        (
            {"target": "https://user:•••@app.example/mail"},
            "The target URL's password is the masked one we show (•••); send the real password, "
            "or leave the target out to keep it.",
        ),
        (
            b'{"target": "https://app.example/\\ud800"}',
            "The target URL is not valid Unicode (a lone surrogate escape).",
        ),
        (b'{"\\ud800": 1}', f"Unknown field '\\ud800'; an address has {FIELDS}."),
        ({"size_as_string": "true"}, "size_as_string must be true or false."),
        ({"formats": "raw"}, f"Unknown field 'formats'; an address has {FIELDS}."),
        ({"address": "x@cloudmailin.test"}, f"address cannot be changed; {FIELDS} can."),
        ({}, f"Nothing to change: send one or more of {FIELDS}."),
        (b"{not json", f"The request body is not valid JSON. {JSON_HINT}"),
        (b"", f"The request body is empty; a JSON object was expected. {JSON_HINT}"),
        (b'["format"]', f"The request body must be a JSON object. {JSON_HINT}"),
        (b'{"size_as_string": NaN}', f"The request body is not valid JSON. {JSON_HINT}"),
    ],
)
def test_bad_changes_are_422_saying_why_and_change_nothing(
    client: FlaskClient, account: Account, db_session: Session, body: Any, error: str
) -> None:
    assert refusal(patch(client, account, body), 422) == error
    address = stored(db_session, account.address_id)
    assert (address.target_url, address.format, address.size_as_string) == (TARGET, "json", False)


def test_one_bad_field_refuses_the_whole_change(
    client: FlaskClient, account: Account, db_session: Session
) -> None:
    refusal(patch(client, account, {"format": "raw", "target": "nope"}), 422)
    assert stored(db_session, account.address_id).format == "json"


def test_a_change_racing_a_deprovision_never_puts_a_target_back_on_the_tombstone(
    app: Flask, account: Account, db_session: Session, settings: Settings
) -> None:
    # A deprovision half done: the resource marked and the target cleared, not yet committed.
    deprovision = session_factory(settings.database_url)()
    holder = deprovision.scalar(text("SELECT pg_backend_pid()"))
    waiting_for = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    deprovision.execute(text("UPDATE resources SET state = :s WHERE id = :id"),
                        {"s": DEPROVISIONED, "id": account.resource_id})
    deprovision.execute(text("UPDATE addresses SET target_url = NULL WHERE id = :id"),
                        {"id": account.address_id})
    answers: list[Any] = []
    client = app.test_client()
    change = threading.Thread(
        target=lambda: answers.append(patch(client, account, {"target": "https://app.example/new"}))
    )
    change.start()
    try:
        deadline = time.monotonic() + 10
        while not db_session.scalar(waiting_for, {"pid": holder}):
            assert time.monotonic() < deadline, "the change never waited for the deprovision's lock"
            db_session.rollback()  # pg_stat_activity is read once per transaction
            time.sleep(0.01)
        deprovision.commit()
    finally:
        deprovision.close()
        change.join(10)
    assert refusal(answers[0], 404) == f"No address {account.address_id} on this account."
    assert stored(db_session, account.address_id).target_url is None
