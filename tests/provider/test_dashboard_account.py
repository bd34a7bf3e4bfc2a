"""The dashboard's credentials page (key shown masked, rotation behind CSRF, the old key's grace
period) and the archive download, each for the one resource the SSO session is bound to."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import insert, select

from provider.models import Credential, InboundMessage, OutboundEvent, OutboundMessage, OutboundRecipient
from provider.services import credentials

from .partner import provision
from .sso_fields import fields

INBOUND_ROWS = 2500
OUTBOUND_MESSAGES = 600


def _signed_in(client, settings) -> tuple[str, str]:
    """A new resource and a session bound to it; its id and SMTP URL."""
    answer = provision(client, settings).json
    assert client.post("/sso/login", data=fields(answer["id"], settings.sso_salt)).status_code == 302
    return answer["id"], answer["config"]["CLOUDMAILIN_SMTP_URL"]


def _csrf(client) -> str:
    page = client.get("/dashboard/credentials").get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def _rotate(client):
    return client.post("/dashboard/credentials/rotate", data={"csrf_token": _csrf(client)})


def _usernames(db_session, resource_id: str) -> list[str]:
    db_session.expire_all()
    return list(db_session.scalars(
        select(Credential.username).where(Credential.resource_id == resource_id).order_by(Credential.id)
    ))


def test_the_account_pages_need_an_sso_session(client):
    assert client.get("/dashboard/credentials").status_code == 403
    assert client.post("/dashboard/credentials/rotate").status_code == 403
    assert client.get("/dashboard/archive").status_code == 403


def test_the_credentials_page_shows_the_username_and_only_the_end_of_the_key(client, settings):
    _, smtp_url = _signed_in(client, settings)
    parts = urlsplit(smtp_url)
    page = client.get("/dashboard/credentials").get_data(as_text=True)
    assert parts.username in page
    assert parts.password not in page
    assert parts.password[-4:] in page


def test_rotating_shows_the_new_username_and_when_the_old_key_stops_working(client, settings, db_session):
    resource_id, smtp_url = _signed_in(client, settings)
    before = datetime.now(UTC)
    answer = _rotate(client)
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/dashboard/credentials")
    old_user, new_user = _usernames(db_session, resource_id)
    assert old_user == urlsplit(smtp_url).username
    page = client.get("/dashboard/credentials").get_data(as_text=True)
    assert f'<code id="username">{new_user}</code>' in page
    retiring = re.search(r'<ul id="retiring">(.*?)</ul>', page, re.S)
    assert retiring is not None and old_user in retiring.group(1)
    shown = re.search(r'<time datetime="([^"]+)"', retiring.group(1))
    assert shown is not None
    ends = datetime.strptime(shown.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    earliest = before + timedelta(hours=24) - timedelta(seconds=1)
    assert earliest <= ends <= datetime.now(UTC) + timedelta(hours=24)


def test_the_old_key_authenticates_until_its_grace_period_ends_and_the_new_one_does(
    client, settings, db_session
):
    resource_id, smtp_url = _signed_in(client, settings)
    old = urlsplit(smtp_url)
    _rotate(client)
    db_session.expire_all()
    credential = db_session.scalar(select(Credential).where(Credential.username == old.username))
    assert credential is not None and credential.expires_at is not None
    ends = credential.expires_at
    assert credentials.authenticate(db_session, old.username, old.password, now=ends - timedelta(seconds=1))
    assert credentials.authenticate(db_session, old.username, old.password, now=ends) is None
    resource = credential.resource
    new = credentials.current_pair(settings, resource)
    assert new is not None and new.username != old.username
    found = credentials.authenticate(db_session, new.username, new.key, now=ends + timedelta(days=1))
    assert found is not None and found.id == resource_id


def test_a_rotation_without_the_forms_csrf_token_is_refused_and_changes_nothing(client, settings, db_session):
    resource_id, _ = _signed_in(client, settings)
    before = _usernames(db_session, resource_id)
    assert client.post("/dashboard/credentials/rotate").status_code == 400
    assert client.post("/dashboard/credentials/rotate", data={"csrf_token": "forged"}).status_code == 400
    assert _usernames(db_session, resource_id) == before


def test_a_session_rotates_only_its_own_resources_key(app, settings, db_session):
    first, second = app.test_client(), app.test_client()
    first_id, _ = _signed_in(first, settings)
    second_id, _ = _signed_in(second, settings)
    untouched = _usernames(db_session, second_id)
    _rotate(first)
    assert len(_usernames(db_session, first_id)) == 2
    assert _usernames(db_session, second_id) == untouched
    page = second.get("/dashboard/credentials").get_data(as_text=True)
    assert untouched[0] in page and _usernames(db_session, first_id)[1] not in page


def _seed_history(db_session, resource_id: str, inbound: int, outbound: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    db_session.execute(insert(InboundMessage), [
        {
            "resource_id": resource_id, "received_at": start + timedelta(seconds=n),
            "envelope_from": f"sender{n}@example.org", "envelope_to": "to@example.com",
            "recipients": ["to@example.com"], "subject": f"inbound {n} ünïcode \"quoted\"\n",
            "status": "201", "http_status": 201, "smtp_reply": "250 2.0.0 OK", "size": n,
        }
        for n in range(inbound)
    ])
    ids = [uuid.uuid4() for _ in range(outbound)]
    db_session.execute(insert(OutboundMessage), [
        {
            "id": ids[n], "resource_id": resource_id, "created_at": start + timedelta(seconds=n),
            "source": "api", "sender": "me@example.com", "sender_domain": "example.com",
            "to": [f"r{n}@example.net"], "subject": f"outbound {n}", "priority": "standard",
            "size": 10, "raw": b"x" * 10,
        }
        for n in range(outbound)
    ])
    recipient_ids = db_session.scalars(insert(OutboundRecipient).returning(OutboundRecipient.id), [
        {"message_id": ids[n], "resource_id": resource_id, "address": f"r{n}@example.net",
         "domain": "example.net", "state": "delivered"}
        for n in range(outbound)
    ]).all()
    db_session.execute(insert(OutboundEvent), [
        {"recipient_id": rid, "state": state, "reply": f"250 {state}", "mx": "mx.example.net"}
        for rid in recipient_ids for state in ("queued", "delivered")
    ])
    db_session.commit()


def test_the_archive_downloads_every_row_of_the_signed_in_resource_as_ndjson(app, settings, db_session):
    mine, other = app.test_client(), app.test_client()
    resource_id, _ = _signed_in(mine, settings)
    other_id, _ = _signed_in(other, settings)
    _seed_history(db_session, resource_id, INBOUND_ROWS, OUTBOUND_MESSAGES)
    _seed_history(db_session, other_id, 7, 3)

    response = mine.get("/dashboard/archive")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    assert response.is_streamed
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    response.close()

    assert lines[0]["type"] == "archive" and lines[0]["resource_id"] == resource_id
    assert lines[-1] == {"type": "end", "inbound": INBOUND_ROWS, "outbound": OUTBOUND_MESSAGES}
    inbound = [line for line in lines if line["type"] == "inbound"]
    outbound = [line for line in lines if line["type"] == "outbound"]
    assert len(lines) == INBOUND_ROWS + OUTBOUND_MESSAGES + 2
    subjects = [f"inbound {n} ünïcode \"quoted\"\n" for n in range(INBOUND_ROWS)]
    assert [row["subject"] for row in inbound] == subjects
    assert {row["from"] for row in inbound} == {f"sender{n}@example.org" for n in range(INBOUND_ROWS)}
    assert [row["subject"] for row in outbound] == [f"outbound {n}" for n in range(OUTBOUND_MESSAGES)]
    for n, message in enumerate(outbound):
        (recipient,) = message["recipients"]
        assert recipient["address"] == f"r{n}@example.net" and recipient["state"] == "delivered"
        assert [e["state"] for e in recipient["events"]] == ["queued", "delivered"]
        assert recipient["events"][1]["reply"] == "250 delivered"

    downloaded = other.get("/dashboard/archive").get_data(as_text=True)
    theirs = [json.loads(line) for line in downloaded.splitlines()]
    assert theirs[-1] == {"type": "end", "inbound": 7, "outbound": 3}
    assert not {row.get("from") for row in theirs} & {row["from"] for row in inbound[7:]}


def test_an_empty_history_archives_as_its_first_and_last_lines(client, settings):
    _signed_in(client, settings)
    downloaded = client.get("/dashboard/archive").get_data(as_text=True)
    lines = [json.loads(line) for line in downloaded.splitlines()]
    assert [line["type"] for line in lines] == ["archive", "end"]
    assert lines[-1] == {"type": "end", "inbound": 0, "outbound": 0}
