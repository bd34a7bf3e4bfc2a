"""What the Settings page tests share: a shop whose app log lines are kept, and posting its forms
with the page's CSRF token."""

from __future__ import annotations

import html
import re
import socket

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.crypto import SecretBox
from provider.models import Address, AppLogLine, Resource
from provider.settings import Settings

from .conftest import Shop, csrf_token, new_shop

PAGE = "/dashboard/settings"


@pytest.fixture(name="shop")
def logged_shop(db_session: Session, settings: Settings) -> Shop:
    """The conftest's shop, with a log drain, so its app log lines are kept."""
    made = new_shop(db_session, settings)
    resource = db_session.get(Resource, made.account.resource_id)
    assert resource is not None
    resource.log_input_url_enc = SecretBox(settings.encryption_key).encrypt("https://t:t@127.0.0.1:9/logs")
    db_session.commit()
    return made


def address_of(db_session: Session, shop: Shop) -> Address:
    db_session.expire_all()
    return db_session.scalars(select(Address).where(Address.resource_id == shop.account.resource_id)).one()


def set_target(db_session: Session, shop: Shop, url: str, fmt: str = "json") -> Address:
    address = address_of(db_session, shop)
    address.target_url, address.format = url, fmt
    db_session.commit()
    return address


def log_lines(db_session: Session, shop: Shop) -> list[str]:
    db_session.expire_all()
    return list(db_session.scalars(select(AppLogLine.message).where(
        AppLogLine.resource_id == shop.account.resource_id).order_by(AppLogLine.id)))


def page_text(client: FlaskClient) -> str:
    response = client.get(PAGE)
    assert response.status_code == 200, response.get_data(as_text=True)
    return html.unescape(response.get_data(as_text=True))


def post(client: FlaskClient, path: str, data: dict[str, str] | None = None, *, htmx: bool = False,
         csrf: bool = True) -> tuple[int, str]:
    fields = dict(data or {})
    if csrf:
        fields["csrf_token"] = csrf_token(client.get(PAGE).get_data(as_text=True))
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.post(path, data=fields, headers=headers)
    return response.status_code, html.unescape(response.get_data(as_text=True))


def field_error(page: str, field_id: str) -> str:
    """The error shown under the field: the input is marked invalid and points at its <small>."""
    tag = re.search(rf'<(?:input|select)[^>]*id="{field_id}"[^>]*>', page)
    assert tag is not None, f"no field {field_id}"
    assert 'aria-invalid="true"' in tag.group(0) and f'aria-describedby="{field_id}-error"' in tag.group(0)
    small = re.search(rf'<small id="{field_id}-error"[^>]*>(.*?)</small>', page, re.S)
    assert small is not None
    return small.group(1).strip()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
