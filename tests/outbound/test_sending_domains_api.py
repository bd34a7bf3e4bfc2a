"""The sending domains API: adding, listing, showing and deleting, its answers and its log lines."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from provider.crypto import box_for, new_encryption_key
from provider.db import session_factory
from provider.models import AppLogLine, Domain, Resource
from provider.models.domain import SENDING
from provider.outbound.dkim import dns_record, public_key_of
from provider.services.sending_domains import InvalidDomainName, sending_domain_name
from provider.settings import Settings, load_settings
from tests.provider.partner import provision, send

from .conftest import Account, new_account


def account_with_log(db_session: Session, settings: Settings) -> Account:
    """An account without sending domains whose add-on has a log drain, so lines are stored."""
    account = new_account(db_session, settings, domain=None)
    resource = db_session.get(Resource, account.resource_id)
    assert resource is not None
    resource.log_input_url_enc = box_for(settings).encrypt("https://t:t@127.0.0.1:9/logs")
    db_session.commit()
    return account


def log_lines(db_session: Session, account: Account) -> list[str]:
    db_session.expire_all()
    mine = select(AppLogLine.message).where(AppLogLine.resource_id == account.resource_id)
    return list(db_session.scalars(mine.order_by(AppLogLine.id)))


@pytest.fixture
def me(db_session: Session, settings: Settings) -> Account:
    return account_with_log(db_session, settings)


def _add(client: FlaskClient, account: Account, name: object):
    return client.post(account.path("sending_domains"), json={"name": name}, headers=account.auth)


def test_adding_a_domain_answers_201_with_the_records_to_publish_and_stores_an_encrypted_key(
    client: FlaskClient, me: Account, db_session: Session, settings: Settings
) -> None:
    response = _add(client, me, "Shop.Example.")
    assert response.status_code == 201, response.json
    body = response.json
    assert (body["name"], body["state"], body["verified"], body["verified_at"]) == (
        "shop.example", "pending", False, None)
    stored = db_session.scalars(select(Domain).where(Domain.name == "shop.example")).one()
    assert stored.kind == SENDING and stored.resource_id == me.resource_id
    assert stored.dkim_selector == "cloudmailin" and len(stored.verification_token or "") == 32
    assert stored.dkim_private_key_enc is not None and b"PRIVATE KEY" not in stored.dkim_private_key_enc
    public = public_key_of(box_for(settings).decrypt(stored.dkim_private_key_enc))
    assert body["dns_records"] == [
        {"type": "TXT", "name": "cloudmailin._domainkey.shop.example", "value": dns_record(public),
         "purpose": "dkim", "required": True},
        {"type": "TXT", "name": "_cloudmailin.shop.example",
         "value": f"cloudmailin-verification={stored.verification_token}", "purpose": "verification",
         "required": True},
        {"type": "TXT", "name": "shop.example", "value": f"v=spf1 include:{settings.spf_include} ~all",
         "purpose": "spf", "required": False},
    ]
    assert log_lines(db_session, me) == ["cloudmailin: sending domain shop.example added"]


def test_a_unicode_name_is_stored_as_its_a_labels_and_found_by_either_spelling(
    client: FlaskClient, me: Account
) -> None:
    assert _add(client, me, "Bücher.example").json["name"] == "xn--bcher-kva.example"
    for spelling in ("bücher.example", "XN--BCHER-KVA.example"):
        response = client.get(me.path(f"sending_domains/{spelling}"), headers=me.auth)
        assert response.status_code == 200 and response.json["name"] == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("localhost", "with a top-level domain"),
        ("192.0.2.1", "with a top-level domain"),
        ("shop..example", "not a valid domain name"),
        ("-shop.example", "not a valid domain name"),
        ("under_score.example", "not a valid domain name"),
        ("orders@shop.example", "not a valid domain name"),
        ("https://shop.example/", "not a valid domain name"),
        ("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 40 + ".example", "longer than 230"),
        pytest.param("x." * 100_000 + "example", "name is longer than 230", id="200KB"),
        ("", "must be a domain name"),
        (42, "must be a domain name"),
        (None, "must be a domain name"),
        ("cloudmailin.test", "this service's own domain"),  # the suite's INBOUND_DOMAIN
        ("Bounces.CloudMailin.test", "this service's own domain"),  # and BOUNCE_DOMAIN
        ("anything.cloudmailin.test", "this service's own domain"),
    ],
)
def test_a_bad_name_is_refused_422_and_nothing_is_stored(
    client: FlaskClient, me: Account, db_session: Session, name: object, error: str
) -> None:
    response = _add(client, me, name)
    assert response.status_code == 422 and error in response.json["error"], response.json
    assert response.json["status"] == 422
    assert db_session.scalars(select(Domain)).all() == []


def test_a_bounce_domain_of_its_own_and_its_parent_are_refused_too(settings: Settings) -> None:
    own = dataclasses.replace(settings, bounce_domain="bounces.mailer.example")
    for name in ("bounces.mailer.example", "mailer.example", "x.bounces.mailer.example"):
        with pytest.raises(InvalidDomainName, match="this service's own domain"):
            sending_domain_name(own, name)
    assert sending_domain_name(own, "other.mailer.example") == "other.mailer.example"


def test_a_body_that_is_not_a_name_is_refused_422(client: FlaskClient, me: Account) -> None:
    path = me.path("sending_domains")
    response = client.post(path, data="shop.example", headers=me.auth)
    assert response.status_code == 422 and '{"name": "mail.example.com"}' in response.json["error"]
    response = client.post(path, json={"name": "shop.example", "selector": "s1"}, headers=me.auth)
    assert response.status_code == 422 and "Unknown field 'selector'" in response.json["error"]


def test_a_domain_of_another_add_on_is_409_to_add_and_404_to_read_verify_or_delete(
    client: FlaskClient, me: Account, db_session: Session, settings: Settings
) -> None:
    other = new_account(db_session, settings, domain=None)
    assert _add(client, other, "shop.example").status_code == 201
    response = _add(client, me, "shop.example")
    assert response.status_code == 409 and "another add-on" in response.json["error"]
    assert _add(client, other, "shop.example").status_code == 409
    path = me.path("sending_domains/shop.example")
    for answer in (client.get(path, headers=me.auth), client.delete(path, headers=me.auth),
                   client.post(path + "/verify", headers=me.auth)):
        assert answer.status_code == 404, answer.json
        assert answer.json == {"status": 404, "error": "No sending domain shop.example on this account."}
    assert db_session.scalars(select(Domain.resource_id)).all() == [other.resource_id]


def test_an_unverified_claim_lapses_after_a_week_and_another_add_on_may_take_the_domain(
    client: FlaskClient, me: Account, db_session: Session, settings: Settings
) -> None:
    squatter = account_with_log(db_session, settings)
    assert _add(client, squatter, "shop.example").status_code == 201
    claim = db_session.scalars(select(Domain)).one()
    claim.created_at -= timedelta(days=7, minutes=1)
    db_session.commit()
    assert _add(client, me, "shop.example").status_code == 201
    assert db_session.scalars(select(Domain.resource_id)).all() == [me.resource_id]
    assert log_lines(db_session, squatter)[-1] == (
        "cloudmailin: sending domain shop.example released (unverified for 7 days, added by another add-on)")


def test_listing_shows_only_the_add_ons_own_domains_by_name(
    client: FlaskClient, me: Account, db_session: Session, settings: Settings
) -> None:
    other = new_account(db_session, settings, domain=None)
    for name in ("zed.example", "ann.example"):
        _add(client, me, name)
    _add(client, other, "other.example")
    response = client.get(me.path("sending_domains"), headers=me.auth)
    assert response.status_code == 200
    assert [d["name"] for d in response.json["sending_domains"]] == ["ann.example", "zed.example"]
    assert all(len(d["dns_records"]) == 3 for d in response.json["sending_domains"])


def test_deleting_answers_204_removes_the_key_and_logs_it(
    client: FlaskClient, me: Account, db_session: Session
) -> None:
    _add(client, me, "shop.example")
    response = client.delete(me.path("sending_domains/shop.example"), headers=me.auth)
    assert response.status_code == 204 and response.data == b""
    assert db_session.scalars(select(Domain)).all() == []
    assert log_lines(db_session, me)[-1] == "cloudmailin: sending domain shop.example deleted"
    assert client.get(me.path("sending_domains/shop.example"), headers=me.auth).status_code == 404


def test_every_route_wants_the_add_ons_key(client: FlaskClient, me: Account) -> None:
    wrong = {"Authorization": "Bearer not-the-key"}
    base = me.path("sending_domains")
    for method, path in (("POST", base), ("GET", base), ("GET", base + "/shop.example"),
                         ("DELETE", base + "/shop.example"), ("POST", base + "/shop.example/verify")):
        response = client.open(path, method=method, json={"name": "shop.example"}, headers=wrong)
        assert response.status_code == 401 and response.json == {"status": 401, "error": "Unauthorized"}


def test_deprovisioning_frees_the_sending_domains_for_another_add_on(
    client: FlaskClient, db_session: Session, settings: Settings
) -> None:
    provisioned = provision(client, settings)
    parts = urlsplit(provisioned.json["config"]["CLOUDMAILIN_SMTP_URL"])
    assert parts.username and parts.password
    leaving = Account(provisioned.json["id"], parts.username, parts.password)
    assert _add(client, leaving, "shop.example").status_code == 201
    response = send(client, settings, "DELETE", f"/heroku/resources/{leaving.resource_id}")
    assert response.status_code == 204
    assert db_session.scalars(select(Domain)).all() == []
    newcomer = new_account(db_session, settings, domain=None)
    assert _add(client, newcomer, "shop.example").status_code == 201


def test_the_advised_spf_include_is_spf_of_the_inbound_domain_unless_set() -> None:
    base = {"DATABASE_URL": "postgres://u:p@h/db", "REDIS_URL": "redis://h",
            "ENCRYPTION_KEY": new_encryption_key(), "INBOUND_DOMAIN": "Mail.Example"}
    assert load_settings(base).spf_include == "spf.mail.example"
    assert load_settings({**base, "SPF_INCLUDE": "_spf.relay.example"}).spf_include == "_spf.relay.example"


def test_an_add_racing_another_add_ons_add_of_the_same_name_is_answered_409(
    app: Flask, me: Account, db_session: Session, settings: Settings
) -> None:
    # The other add-on's add half done: its row inserted, not yet committed.
    other = new_account(db_session, settings, domain=None)
    first = session_factory(settings.database_url)()
    holder = first.scalar(text("SELECT pg_backend_pid()"))
    first.add(Domain(resource_id=other.resource_id, name="shop.example", kind=SENDING))
    first.flush()
    waiting_for = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    answers: list[Any] = []
    client = app.test_client()
    racing = threading.Thread(target=lambda: answers.append(_add(client, me, "shop.example")))
    racing.start()
    try:
        deadline = time.monotonic() + 10
        while not db_session.scalar(waiting_for, {"pid": holder}):
            assert time.monotonic() < deadline, "the second add never waited for the first one's row"
            db_session.rollback()  # pg_stat_activity is read once per transaction
            time.sleep(0.01)
        first.commit()
    finally:
        first.close()
        racing.join(10)
    assert answers[0].status_code == 409 and "another add-on" in answers[0].json["error"]
    db_session.rollback()
    assert db_session.scalars(select(Domain.resource_id)).all() == [other.resource_id]
