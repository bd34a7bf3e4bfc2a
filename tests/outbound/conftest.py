"""An account that may send: a provisioned resource, its SMTP/API credential and a verified
sending domain, against the real PostgreSQL and Redis of the suite."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from provider.models import Domain, Resource
from provider.models.base import utcnow
from provider.models.domain import SENDING
from provider.models.resource import PROVISIONED
from provider.services.credentials import issue_credential
from provider.settings import Settings
from tests.domain_rows import create_address

SENDING_DOMAIN = "shop.example"


@dataclass
class Account:
    resource_id: str
    username: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def path(self, rest: str = "messages") -> str:
        return f"/api/v0.1/{self.username}/{rest}"


def new_account(db_session: Session, settings: Settings, *, plan: str = "starter",
                domain: str | None = SENDING_DOMAIN) -> Account:
    resource = Resource(id=str(uuid.uuid4()), plan=plan, state=PROVISIONED)
    db_session.add(resource)
    create_address(db_session, settings, resource, "https://app.example/mail")
    credential = issue_credential(db_session, settings, resource)
    db_session.flush()
    if domain:
        db_session.add(Domain(resource_id=resource.id, name=domain, kind=SENDING, verified_at=utcnow()))
    db_session.commit()
    return Account(resource.id, credential.username, credential.key)


@pytest.fixture
def account(db_session: Session, settings: Settings) -> Account:
    return new_account(db_session, settings)
