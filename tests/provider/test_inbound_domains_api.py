"""The inbound domains API: claiming, listing, deleting, verifying against a real DNS server on
127.0.0.1, the plan's limit, one add-on per domain, patterns refused, deprovisioning freeing them."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from provider import create_app
from provider.db import session_factory
from provider.models import Address, Domain
from provider.models.domain import INBOUND
from provider.settings import Settings
from tests.dnsserver import DnsServer
from tests.outbound.conftest import Account, new_account
from tests.provider.partner import send

NAME = "shop.example"


@pytest.fixture
def zone() -> Iterator[DnsServer]:
    with DnsServer({}) as server:
        yield server


@pytest.fixture
def app(settings: Settings, zone: DnsServer) -> Flask:
    return create_app(dataclasses.replace(settings, dns_nameservers=zone.nameservers))


@pytest.fixture
def me(db_session: Session, settings: Settings) -> Account:
    return new_account(db_session, settings, plan="premium", domain=None)


def _add(client: FlaskClient, account: Account, name: object, **fields: Any):
    return client.post(account.path("inbound_domains"), json={"name": name, **fields}, headers=account.auth)


def _publish(
    zone: DnsServer, settings: Settings, body: dict[str, Any], *, mx: list[str] | None = None
) -> None:
    records: dict[str, dict[str, list[str]]] = {}
    for record in body["dns_records"]:
        values = mx if record["type"] == "MX" and mx is not None else [record["value"]]
        records.setdefault(record["name"], {}).setdefault(record["type"], []).extend(values)
    zone.set_records(records)


def test_adding_a_domain_answers_201_pending_with_the_mx_and_token_records_to_publish(
    client: FlaskClient, me: Account, db_session: Session, settings: Settings
) -> None:
    response = _add(client, me, "Shop.Example.")
    assert response.status_code == 201, response.json
    stored = db_session.scalars(select(Domain).where(Domain.name == NAME, Domain.kind == INBOUND)).one()
    address_id = db_session.scalar(select(Address.id).where(Address.resource_id == me.resource_id))
    assert (stored.resource_id, stored.address_id, stored.local_part_regex) == (
        me.resource_id,
        address_id,
        None,
    )
    body = response.json
    assert (body["name"], body["state"], body["verified"], body["local_part_regex"]) == (
        NAME,
        "pending",
        False,
        None,
    )
    assert body["dns_records"] == [
        {"type": "MX", "name": NAME, "value": "10 mx.cloudmailin.test", "purpose": "mx", "required": True},
        {
            "type": "TXT",
            "name": f"_cloudmailin.{NAME}",
            "value": f"cloudmailin-verification={stored.verification_token}",
            "purpose": "verification",
            "required": True,
        },
    ]
    listed = client.get(me.path("inbound_domains"), headers=me.auth)
    assert [domain["name"] for domain in listed.json["inbound_domains"]] == [NAME]
    assert client.get(me.path(f"inbound_domains/{NAME.upper()}"), headers=me.auth).json == body


def test_the_mx_host_is_the_inbound_mx_host_setting(
    settings: Settings, zone: DnsServer, db_session: Session
) -> None:
    app = create_app(dataclasses.replace(settings, inbound_mx_host="in.mail.example.net"))
    account = new_account(db_session, settings, plan="starter", domain=None)
    body = _add(app.test_client(), account, NAME).json
    assert body["dns_records"][0]["value"] == "10 in.mail.example.net"


def test_a_wildcard_and_a_pattern_are_stored_and_the_wildcards_token_sits_at_its_parent(
    client: FlaskClient, me: Account
) -> None:
    response = _add(client, me, "*.Shop.Example", local_part_regex="orders|support(\\+.*)?")
    assert response.status_code == 201, response.json
    body = response.json
    assert (body["name"], body["local_part_regex"]) == ("*.shop.example", "orders|support(\\+.*)?")
    assert [record["name"] for record in body["dns_records"]] == [
        "*.shop.example",
        "_cloudmailin.shop.example",
    ]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("not a domain", "'not a domain' is not a valid domain name."),
        ("localhost", "'localhost' is not a domain name with a top-level domain, such as example.com."),
        ("*.example", "'*.example' is not a domain name with a top-level domain, such as example.com."),
        ("a.*.example.com", "'a.*.example.com' is not a valid domain name."),
        (
            "x.cloudmailin.test",
            "x.cloudmailin.test is this service's own domain (or a parent of it) and cannot "
            "be a custom inbound domain.",
        ),
        (
            "*.cloudmailin.test",
            "*.cloudmailin.test is this service's own domain (or a parent of it) and cannot "
            "be a custom inbound domain.",
        ),
        (None, "name must be a domain name, such as mail.example.com."),
    ],
)
def test_a_name_that_is_not_a_domain_of_the_customers_is_refused_with_422(
    client: FlaskClient, me: Account, name: object, error: str
) -> None:
    response = _add(client, me, name)
    assert (response.status_code, response.json) == (422, {"status": 422, "error": error})


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "invalid escape sequence: \\1"),
        ("(?=orders)o.*", "invalid perl operator: (?="),
        ("(?<!x)y", "invalid perl operator: (?<"),
        ("[a-z", "missing ]: [a-z"),
        ("(.*){1000}", "too complex"),
        ("x" * 256, "longer than 255 characters"),
        (42, "must be a string (a pattern) or null"),
    ],
)
def test_a_pattern_that_could_not_run_in_bounded_time_is_refused_with_422(
    client: FlaskClient, me: Account, db_session: Session, pattern: object, reason: str
) -> None:
    response = _add(client, me, NAME, local_part_regex=pattern)
    assert response.status_code == 422
    assert reason in response.json["error"]
    assert db_session.scalars(select(Domain)).all() == []


def test_unknown_fields_and_bodies_that_are_not_objects_are_refused_with_422(
    client: FlaskClient, me: Account
) -> None:
    response = client.post(me.path("inbound_domains"), json={"name": NAME, "target": "x"}, headers=me.auth)
    assert (response.status_code, response.json["error"]) == (
        422,
        "Unknown field 'target'; an inbound domain has name and local_part_regex.",
    )
    response = client.post(me.path("inbound_domains"), data=b"[1]", headers=me.auth)
    assert response.status_code == 422 and "JSON object" in response.json["error"]


def test_the_free_plan_is_refused_with_403_naming_the_plan(
    client: FlaskClient, db_session: Session, settings: Settings
) -> None:
    account = new_account(db_session, settings, plan="free", domain=None)
    response = _add(client, account, NAME)
    assert (response.status_code, response.json["error"]) == (
        403,
        "The free plan has no custom inbound domains; upgrade to a paid plan (starter and up) to add one.",
    )


def test_a_plan_allows_as_many_domains_as_its_custom_domains_and_no_more(
    client: FlaskClient, db_session: Session, settings: Settings
) -> None:
    account = new_account(db_session, settings, plan="starter", domain=None)
    assert _add(client, account, NAME).status_code == 201
    response = _add(client, account, "other.example")
    assert (response.status_code, response.json["error"]) == (
        403,
        "The starter plan allows 1 custom inbound domain and this add-on has 1; delete one or upgrade.",
    )
    assert client.delete(account.path(f"inbound_domains/{NAME}"), headers=account.auth).status_code == 204
    assert _add(client, account, "other.example").status_code == 201


def test_a_domain_belongs_to_one_add_on_and_a_second_claim_is_409(
    client: FlaskClient, me: Account, db_session: Session, settings: Settings
) -> None:
    other = new_account(db_session, settings, plan="premium", domain=None)
    assert _add(client, me, NAME).status_code == 201
    response = _add(client, other, NAME)
    assert (response.status_code, response.json["error"]) == (
        409,
        f"{NAME} is an inbound domain of another add-on. A claim that is not verified within 7 days lapses.",
    )
    again = _add(client, me, NAME)
    assert (again.status_code, again.json["error"]) == (
        409,
        f"{NAME} is already an inbound domain of this add-on.",
    )
    assert client.get(other.path(f"inbound_domains/{NAME}"), headers=other.auth).status_code == 404


def test_an_unverified_claim_lapses_after_seven_days_and_another_add_on_takes_it(
    client: FlaskClient, me: Account, db_session: Session, settings: Settings
) -> None:
    other = new_account(db_session, settings, plan="premium", domain=None)
    assert _add(client, me, NAME).status_code == 201
    db_session.execute(update(Domain).values(created_at=Domain.created_at - timedelta(days=8)))
    db_session.commit()
    assert _add(client, other, NAME).status_code == 201
    db_session.expire_all()
    assert db_session.scalars(select(Domain.resource_id)).all() == [other.resource_id]


def test_verify_reports_each_record_and_routes_only_when_mx_and_token_are_both_published(
    client: FlaskClient, me: Account, zone: DnsServer, settings: Settings
) -> None:
    body = _add(client, me, NAME).json
    verify = me.path(f"inbound_domains/{NAME}/verify")

    nothing = client.post(verify, headers=me.auth).json
    assert (nothing["verified"], [check["status"] for check in nothing["checks"]]) == (
        False,
        ["missing", "missing"],
    )

    _publish(zone, settings, body, mx=["10 mx.elsewhere.example"])
    wrong = client.post(verify, headers=me.auth).json
    assert [check["status"] for check in wrong["checks"]] == ["wrong", "ok"]
    assert wrong["checks"][0]["detail"] == (
        f"The MX records of {NAME} are 10 mx.elsewhere.example, not mx.cloudmailin.test; "
        "publish MX 10 mx.cloudmailin.test."
    )
    assert wrong["verified"] is False

    _publish(zone, settings, body, mx=["20 mx.cloudmailin.test", "10 mx.elsewhere.example"])
    backup = client.post(verify, headers=me.auth).json
    assert (backup["verified"], backup["checks"][0]["status"]) == (False, "wrong")

    _publish(zone, settings, body)
    done = client.post(verify, headers=me.auth).json
    assert (done["verified"], done["state"], [check["status"] for check in done["checks"]]) == (
        True,
        "verified",
        ["ok", "ok"],
    )

    zone.set_records({})
    later = client.post(verify, headers=me.auth).json
    assert (later["verified"], [check["status"] for check in later["checks"]]) == (
        True,
        ["missing", "missing"],
    )


def test_a_failed_lookup_says_try_again_and_leaves_the_domain_pending(
    client: FlaskClient, me: Account, zone: DnsServer
) -> None:
    _add(client, me, NAME)
    zone.servfail = {NAME, f"_cloudmailin.{NAME}"}
    body = client.post(me.path(f"inbound_domains/{NAME}/verify"), headers=me.auth).json
    assert [check["status"] for check in body["checks"]] == ["lookup_failed", "lookup_failed"]
    assert body["checks"][0]["detail"].endswith("try again.") and body["verified"] is False


def test_deleting_answers_204_then_404_and_is_another_accounts_404(
    client: FlaskClient, me: Account, db_session: Session, settings: Settings
) -> None:
    other = new_account(db_session, settings, plan="premium", domain=None)
    _add(client, me, NAME)
    assert client.delete(other.path(f"inbound_domains/{NAME}"), headers=other.auth).status_code == 404
    assert client.delete(me.path(f"inbound_domains/{NAME}"), headers=me.auth).status_code == 204
    response = client.delete(me.path(f"inbound_domains/{NAME}"), headers=me.auth)
    assert (response.status_code, response.json["error"]) == (
        404,
        f"No inbound domain {NAME} on this account.",
    )


def test_without_the_key_every_route_is_401(client: FlaskClient, me: Account) -> None:
    for method, path in [
        ("POST", "inbound_domains"),
        ("GET", "inbound_domains"),
        ("GET", f"inbound_domains/{NAME}"),
        ("DELETE", f"inbound_domains/{NAME}"),
        ("POST", f"inbound_domains/{NAME}/verify"),
    ]:
        response = client.open(
            me.path(path), method=method, json={"name": NAME}, headers={"Authorization": "Bearer wrong"}
        )
        assert response.status_code == 401, (method, path)


def test_deprovisioning_frees_the_domain_for_another_add_on(
    client: FlaskClient, me: Account, db_session: Session, settings: Settings
) -> None:
    other = new_account(db_session, settings, plan="premium", domain=None)
    assert _add(client, me, NAME).status_code == 201
    db_session.execute(update(Domain).values(verified_at=Domain.created_at))
    db_session.commit()
    assert _add(client, other, NAME).status_code == 409
    assert send(client, settings, "DELETE", f"/heroku/resources/{me.resource_id}").status_code == 204
    assert _add(client, other, NAME).status_code == 201


def test_two_concurrent_adds_cannot_both_take_the_plans_last_domain(
    app: Flask, db_session: Session, settings: Settings
) -> None:
    account = new_account(db_session, settings, plan="starter", domain=None)
    holder_session = session_factory(settings.database_url)()
    holder_session.execute(
        text("SELECT 1 FROM resources WHERE id = :id FOR UPDATE"), {"id": account.resource_id}
    )
    # The first waits for the holder, the second for the first (the row lock's queue).
    waiting_for = text("SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0")
    answers: list[Any] = []
    adds = [
        threading.Thread(target=lambda name=name: answers.append(_add(app.test_client(), account, name)))
        for name in ("one.example", "two.example")
    ]
    for add in adds:
        add.start()
    try:
        deadline = time.monotonic() + 10
        while db_session.scalar(waiting_for) < 2:
            assert time.monotonic() < deadline, "the adds never waited for the resource's lock"
            db_session.rollback()  # pg_stat_activity is read once per transaction
            time.sleep(0.01)
        holder_session.commit()
    finally:
        holder_session.close()
        for add in adds:
            add.join(10)
    assert sorted(answer.status_code for answer in answers) == [201, 403]
    db_session.rollback()
    assert len(db_session.scalars(select(Domain)).all()) == 1
