"""Verifying a sending domain against a real DNS server on 127.0.0.1, then sending from it, signed."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import dkim
import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provider.dns import lookup_txt, make_resolver
from provider.models import OutboundMessage
from provider.outbound.dkim import dns_record, new_key_pair
from provider.settings import Settings
from tests.dnsserver import DnsServer
from workers.delivery.dkim import DkimSigner
from workers.delivery.store import Message

from .test_sending_domains_api import Account, account_with_log, log_lines

NAME = "shop.example"
MESSAGE = {"from": f"Shop <orders@{NAME}>", "to": "ann@example.com", "subject": "Your order",
           "plain": "Thanks!\n"}


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer({}) as server:
        yield server


@pytest.fixture
def settings(settings: Settings, dns_server: DnsServer) -> Settings:
    return dataclasses.replace(settings, dns_nameservers=dns_server.nameservers)


@pytest.fixture
def me(db_session: Session, settings: Settings) -> Account:
    return account_with_log(db_session, settings)


def _added(client: FlaskClient, account: Account, name: str = NAME) -> dict[str, dict[str, Any]]:
    response = client.post(account.path("sending_domains"), json={"name": name}, headers=account.auth)
    assert response.status_code == 201, response.json
    return {record["purpose"]: record for record in response.json["dns_records"]}


def _publish(server: DnsServer, *records: dict[str, Any], extra: dict[str, list[str]] | None = None) -> None:
    zone: dict[str, dict[str, list[str]]] = {}
    for record in records:
        zone.setdefault(record["name"], {}).setdefault("TXT", []).append(record["value"])
    for name, values in (extra or {}).items():
        zone.setdefault(name, {}).setdefault("TXT", []).extend(values)
    server.set_records(zone)


def _verify(client: FlaskClient, account: Account, name: str = NAME):
    response = client.post(account.path(f"sending_domains/{name}/verify"), headers=account.auth)
    assert response.status_code == 200, response.json
    return response.json, {check["purpose"]: check for check in response.json["checks"]}


def test_with_nothing_published_verify_says_which_records_are_missing_and_the_domain_stays_pending(
    client: FlaskClient, me: Account, db_session: Session
) -> None:
    records = _added(client, me)
    body, checks = _verify(client, me)
    assert (body["verified"], body["state"], body["verified_at"]) == (False, "pending", None)
    assert {purpose: check["status"] for purpose, check in checks.items()} == {
        "dkim": "missing", "verification": "missing", "spf": "missing"}
    assert checks["dkim"]["detail"] == (
        f"No TXT record at cloudmailin._domainkey.{NAME}; publish {records['dkim']['value']}")
    assert checks["verification"]["detail"] == (
        f"No verification TXT record at _cloudmailin.{NAME}; publish {records['verification']['value']}")
    assert log_lines(db_session, me) == [f"cloudmailin: sending domain {NAME} added"]


def test_another_key_or_token_is_reported_wrong(
    client: FlaskClient, me: Account, dns_server: DnsServer
) -> None:
    records = _added(client, me)
    stale_key = {**records["dkim"], "value": dns_record(new_key_pair()[1])}
    stale_token = {**records["verification"], "value": "cloudmailin-verification=0123456789abcdef"}
    _publish(dns_server, stale_key, stale_token, extra={NAME: ["v=spf1 mx -all"]})
    body, checks = _verify(client, me)
    assert body["verified"] is False
    assert checks["dkim"]["status"] == "wrong"
    assert checks["dkim"]["detail"].endswith(f"is another key; replace it with {records['dkim']['value']}")
    assert checks["verification"]["status"] == "wrong"
    assert checks["spf"]["status"] == "wrong" and "lacks include:" in checks["spf"]["detail"]
    _publish(dns_server, records["dkim"], stale_key, records["verification"])  # an old key left behind
    _body, checks = _verify(client, me)
    assert checks["dkim"]["status"] == "wrong" and "2 DKIM keys are published" in checks["dkim"]["detail"]


def test_a_dns_failure_is_reported_as_such_and_verifies_nothing(
    client: FlaskClient, me: Account, dns_server: DnsServer
) -> None:
    records = _added(client, me)
    _publish(dns_server, records["dkim"], records["verification"])
    dns_server.servfail.add(records["dkim"]["name"])
    body, checks = _verify(client, me)
    assert body["verified"] is False and checks["verification"]["status"] == "ok"
    assert checks["dkim"]["status"] == "lookup_failed" and "try again" in checks["dkim"]["detail"]


def test_with_both_records_published_the_domain_is_verified_and_it_is_logged(
    client: FlaskClient, me: Account, dns_server: DnsServer, db_session: Session
) -> None:
    records = _added(client, me)
    _publish(dns_server, *records.values())
    body, checks = _verify(client, me)
    assert (body["verified"], body["state"]) == (True, "verified") and body["verified_at"]
    assert {purpose: check["status"] for purpose, check in checks.items()} == {
        "dkim": "ok", "verification": "ok", "spf": "ok"}
    assert log_lines(db_session, me)[-1] == f"cloudmailin: sending domain {NAME} verified"
    shown = client.get(me.path(f"sending_domains/{NAME}"), headers=me.auth).json
    assert (shown["state"], shown["verified_at"]) == ("verified", body["verified_at"])


def test_a_verified_domain_stays_verified_when_a_later_check_finds_the_records_gone(
    client: FlaskClient, me: Account, dns_server: DnsServer, db_session: Session
) -> None:
    records = _added(client, me)
    _publish(dns_server, records["dkim"], records["verification"])
    first, _ = _verify(client, me)
    dns_server.set_records({})
    body, checks = _verify(client, me)
    assert (body["verified"], body["verified_at"]) == (True, first["verified_at"])
    assert checks["dkim"]["status"] == "missing"
    assert log_lines(db_session, me).count(f"cloudmailin: sending domain {NAME} verified") == 1


def test_mail_from_the_domain_is_refused_until_it_is_verified_then_accepted_and_signed_with_its_key(
    client: FlaskClient, me: Account, dns_server: DnsServer, db_session: Session, settings: Settings
) -> None:
    records = _added(client, me)
    refused = client.post(me.path("messages"), json=MESSAGE, headers=me.auth)
    assert refused.status_code == 422
    assert refused.json["error"].startswith(f"Sending from {NAME} is not allowed")
    _publish(dns_server, records["dkim"], records["verification"])
    assert _verify(client, me)[0]["verified"] is True
    accepted = client.post(me.path("messages"), json=MESSAGE, headers=me.auth)
    assert accepted.status_code == 202, accepted.json
    from_subdomain = {**MESSAGE, "from": f"news@letters.{NAME}"}
    assert client.post(me.path("messages"), json=from_subdomain, headers=me.auth).status_code == 202

    stored = db_session.get(OutboundMessage, uuid.UUID(accepted.json["id"]))
    assert stored is not None
    message = Message(stored.id, stored.resource_id, stored.created_at, stored.sender_domain, stored.raw)
    header = DkimSigner(settings)(db_session, message)
    assert header.startswith(b"DKIM-Signature: ") and b" d=shop.example;" in header
    assert b" s=cloudmailin;" in header
    resolver = make_resolver(settings.dns_nameservers)

    def published(name: bytes, timeout: int = 5) -> bytes:
        return "".join(lookup_txt(resolver, name.decode().rstrip("."))).encode()

    assert dkim.verify(header + stored.raw, dnsfunc=published)
    assert not dkim.verify(header + stored.raw.replace(b"Thanks!", b"Thanks?"), dnsfunc=published)


def test_a_deleted_domain_may_no_longer_send(
    client: FlaskClient, me: Account, dns_server: DnsServer
) -> None:
    records = _added(client, me)
    _publish(dns_server, records["dkim"], records["verification"])
    _verify(client, me)
    assert client.delete(me.path(f"sending_domains/{NAME}"), headers=me.auth).status_code == 204
    refused = client.post(me.path("messages"), json=MESSAGE, headers=me.auth)
    assert refused.status_code == 422 and "not allowed" in refused.json["error"]
