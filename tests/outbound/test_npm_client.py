"""The official npm client `cloudmailin` (0.1.0, pinned in tests/npm) sends through this service.

clients/cloudmailin_send.js runs as a real node process against the app served on a real socket
on 127.0.0.1, as a customer's app would use it: `new MessageClient({username, apiKey, baseURL})`,
then `sendMessage` (attachments, an inline image, tags, a header), `sendRawMessage`, a wrong key
and a message without a body. What it got back is compared with what PostgreSQL holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from provider.models import OutboundMessage
from tests.cli import NPM_DIR, ensure_npm_tools
from tests.heroku_standin.server import serve_wsgi

from .conftest import SENDING_DOMAIN, Account

SCRIPT = Path(__file__).resolve().parent / "clients" / "cloudmailin_send.js"
NODE_TIMEOUT = 60

pytestmark = pytest.mark.e2e


@pytest.fixture
def results(app: Flask, account: Account) -> dict[str, Any]:
    """What the client's four calls returned (or threw), against the app on a real socket."""
    ensure_npm_tools()
    with serve_wsgi(app) as url:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "NODE_PATH": str(NPM_DIR / "node_modules"),
            "CM_BASE_URL": f"{url}/api/v0.1",
            "CM_USERNAME": account.username,
            "CM_API_KEY": account.key,
            "CM_FROM": f"orders@{SENDING_DOMAIN}",
        }
        done = subprocess.run(["node", str(SCRIPT)], env=env, capture_output=True, text=True,
                              timeout=NODE_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def _stored(db_session: Session, answer: dict[str, Any]) -> OutboundMessage:
    message = db_session.get(OutboundMessage, uuid.UUID(answer["id"]))
    assert message is not None
    return message


def test_send_message_with_attachments_and_tags_is_stored_under_the_id_it_answers(
    results: dict[str, Any], db_session: Session, account: Account
) -> None:
    answer = results["message"]["ok"]
    assert uuid.UUID(answer["id"]).version == 4
    assert answer["tags"] == ["orders", "npm", "api"] and answer["cc"] == ["cy@example.com"]
    stored = _stored(db_session, answer)
    assert (stored.resource_id, stored.source, stored.priority) == (account.resource_id, "api", "priority")
    assert stored.subject == "Your order from the npm client"
    assert [r.address for r in stored.recipients] == ["ann@example.com", "bo@example.org", "cy@example.com"]
    sent = message_from_bytes(stored.raw, policy=policy.default)
    assert isinstance(sent, EmailMessage)
    assert sent["X-Order"] == "42"
    parts = {part.get_filename(): part for part in sent.walk() if part.get_filename()}
    assert parts["receipt.txt"].get_content() == "Receipt 42\n"
    assert parts["logo.png"]["Content-ID"] == "<logo>"
    assert parts["logo.png"].get_content() == bytes([137, 80, 78, 71])


def test_send_raw_message_is_stored_byte_for_byte_under_its_id(
    results: dict[str, Any], db_session: Session
) -> None:
    answer = results["raw"]["ok"]
    stored = _stored(db_session, answer)
    assert stored.tags == ["raw", "api"] and [r.address for r in stored.recipients] == ["dee@example.net"]
    assert stored.raw.endswith(b"Subject: Raw from the npm client\r\n\r\nHello, raw.\r\n")


def test_a_wrong_key_is_the_clients_cloudmailin_error_with_status_401(results: dict[str, Any]) -> None:
    assert results["wrongKey"]["error"] == {
        "name": "CloudMailinError", "isCloudMailinError": True, "status": 401, "message": "Unauthorized",
    }


def test_a_message_without_a_body_is_refused_with_the_documented_text(
    results: dict[str, Any], db_session: Session
) -> None:
    error = results["noBody"]["error"]
    assert (error["isCloudMailinError"], error["status"]) == (True, 422)
    assert "body not found" in error["message"]
    assert db_session.query(OutboundMessage).count() == 2  # the message and the raw one only
