"""Signed-in dashboard sessions over accounts with some history, on the suite's real PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provider import create_app
from provider.models import OutboundEvent, OutboundMessage, OutboundRecipient, Suppression
from provider.models.base import utcnow
from provider.services.history import Delivery
from provider.settings import Settings
from tests.domain_rows import record_delivery

from ..outbound.conftest import Account, new_account
from ..provider.sso_fields import fields
from ..smtp_edge.conftest import dns_server, edge, edge_settings, smtp_data_dir  # noqa: F401  (fixtures)
from .apps import dispose
from .browsing import browser, heroku, site, target  # noqa: F401  (fixtures)


@dataclass
class Shop:
    """An account with one inbound message, one sent message (with an event) and a suppression."""

    account: Account
    inbound_id: int
    outbound_id: uuid.UUID


def inbound(db_session: Session, resource_id: str, *, subject: str, status: str = "201",
            when: datetime | None = None, sender: str = "ann@sender.example") -> int:
    row = record_delivery(db_session, Delivery(
        resource_id=resource_id, address_id=None, envelope_from=sender,
        envelope_to="box@cloudmailin.test", recipients=["box@cloudmailin.test"], status=status,
        smtp_reply="250 2.0.0 ok" if status.startswith("2") else "550 5.0.0 refused",
        subject=subject, message_id=f"<{uuid.uuid4()}@sender.example>", size=321, spf_result="pass",
        tls=True, remote_ip="127.0.0.1", target_url="https://app.example/mail",
        http_status=int(status) if status.isdigit() else None, response_body="thanks from the app",
        target_ms=42, received_at=when or utcnow(),
    ))
    db_session.commit()
    return row.id


def outbound(db_session: Session, resource_id: str, *, subject: str, state: str = "delivered",
             reply: str = "250 2.0.0 queued as 12345") -> uuid.UUID:
    message_id = uuid.uuid4()
    message = OutboundMessage(
        id=message_id, resource_id=resource_id, created_at=utcnow(), source="api",
        sender="Shop <orders@shop.example>", sender_domain="shop.example", to=["bo@example.org"],
        cc=[], subject=subject, message_id_header=f"<{message_id}@shop.example>", tags=["orders"],
        priority="standard", test_mode=False, size=120, raw=b"From: orders@shop.example\r\n\r\nx\r\n",
    )
    recipient = OutboundRecipient(
        resource_id=resource_id, address="bo@example.org", domain="example.org", state=state,
        attempts=1, next_attempt_at=None, last_reply=reply,
    )
    recipient.events.append(OutboundEvent(state=state, reply=reply, mx="mx.example.org"))
    message.recipients.append(recipient)
    db_session.add(message)
    db_session.commit()
    return message_id


def new_shop(db_session: Session, settings: Settings, *, domain: str | None = "shop.example") -> Shop:
    account = new_account(db_session, settings, domain=domain)
    inbound_id = inbound(db_session, account.resource_id, subject="Order 1001 received",
                         when=utcnow() - timedelta(hours=1))
    outbound_id = outbound(db_session, account.resource_id, subject="Your order shipped")
    db_session.add(Suppression(resource_id=account.resource_id, address="gone@example.net",
                               reason="550 5.1.1 no such user"))
    db_session.commit()
    return Shop(account, inbound_id, outbound_id)


def sign_in(client: FlaskClient, settings: Settings, resource_id: str) -> None:
    response = client.post("/sso/login", data=fields(resource_id, settings.sso_salt))
    assert response.status_code == 302, response.get_data(as_text=True)


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    dispose(app)


@pytest.fixture
def shop(db_session: Session, settings: Settings) -> Shop:
    return new_shop(db_session, settings)


@pytest.fixture
def other_shop(db_session: Session, settings: Settings) -> Shop:
    return new_shop(db_session, settings, domain=None)  # a sending domain has one owner


@pytest.fixture
def signed_in(client: FlaskClient, settings: Settings, shop: Shop) -> FlaskClient:
    sign_in(client, settings, shop.account.resource_id)
    return client
