"""Custom inbound domains through the real edge: claimed and verified through the API against a
real DNS server on 127.0.0.1, mail to them POSTed to the address's target, and every change
(verify, delete, deprovision) reaching the running edge's route cache by NOTIFY (migration 0014)."""

from __future__ import annotations

import dataclasses
import json
import smtplib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from dev.services import S3Server
from provider import create_app
from provider.models import Address, Resource
from provider.plans import PLANS
from provider.services.credentials import issue_credential
from provider.services.stores import StoreConfig, write_config
from provider.settings import Settings
from smtp_edge.routes import RouteCache
from tests.conftest import STORE_BUCKET
from tests.dnsserver import DnsServer
from tests.provider.partner import send as partner_send
from tests.usage_counts import count_inbound

from .conftest import SENDER, Conversation, EdgeThread, Mailbox, Target, history, message, open_transaction
from .test_stores import with_attachments

NAME = "shop.example"
UNKNOWN = "550 5.1.1 No such recipient here"
NOT_SERVED = "550 5.7.1 Relaying denied: this server only accepts mail for the domains it serves"


@pytest.fixture
def zone() -> Iterator[DnsServer]:
    with DnsServer({}) as server:
        yield server


@pytest.fixture
def app(settings: Settings, zone: DnsServer) -> Flask:
    return create_app(dataclasses.replace(settings, dns_nameservers=zone.nameservers))


@dataclass
class Customer:
    box: Mailbox
    username: str
    key: str
    client: FlaskClient
    zone: DnsServer
    records: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def path(self, rest: str) -> str:
        return f"/api/v0.1/{self.username}/{rest}"

    def claim(self, name: str, pattern: str | None = None) -> dict:
        response = self.client.post(
            self.path("inbound_domains"), json={"name": name, "local_part_regex": pattern}, headers=self.auth
        )
        assert response.status_code == 201, response.json
        return response.json

    def publish(self, body: dict) -> None:
        for record in body["dns_records"]:
            self.records.setdefault(record["name"], {}).setdefault(record["type"], []).append(record["value"])
        self.zone.set_records(self.records)

    def verify(self, name: str) -> dict:
        response = self.client.post(self.path(f"inbound_domains/{name}/verify"), headers=self.auth)
        assert response.status_code == 200, response.json
        return response.json

    def serve(self, name: str, pattern: str | None = None) -> None:
        """Claim, publish the records the answer names, verify."""
        self.publish(self.claim(name, pattern))
        assert self.verify(name)["verified"] is True


@pytest.fixture
def customer(
    mailbox: Callable[..., Mailbox],
    db_session: Session,
    settings: Settings,
    client: FlaskClient,
    zone: DnsServer,
) -> Callable[..., Customer]:
    def make(path: str = "/status/201", plan: str = "premium") -> Customer:
        box = mailbox(path, plan=plan)
        resource = db_session.get(Resource, box.resource_id)
        assert resource is not None
        pair = issue_credential(db_session, settings, resource)
        db_session.commit()
        return Customer(box, pair.username, pair.key, client, zone)

    return make


def _cache(edge: EdgeThread) -> RouteCache:
    assert edge.server.context is not None
    return edge.server.context.routes


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _rcpt(edge: EdgeThread, recipient: str) -> list[str]:
    smtp = open_transaction(edge.mx_port)
    try:
        return smtp.command(f"RCPT TO:<{recipient}>")
    finally:
        smtp.close()


def _deliver(edge: EdgeThread, recipient: str, subject: str = "Hello") -> None:
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.sendmail(SENDER, [recipient], message(subject))


def _envelopes(target: Target, path: str = "/status/201") -> list[dict]:
    return [json.loads(request.body)["envelope"] for request in target.posts_to(path)]


def test_a_claimed_domain_not_verified_yet_is_refused_550_5_1_1_and_routed_from_the_verify_on(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer]
) -> None:
    me = customer()
    body = me.claim(NAME)
    assert _rcpt(edge, f"anyone@{NAME}") == [UNKNOWN]
    me.publish(body)
    assert me.verify(NAME)["verified"] is True
    assert _rcpt(edge, f"anyone@{NAME}") == ["250 2.1.5 OK"]
    assert _rcpt(edge, "anyone@nobody-claims.example") == [NOT_SERVED]


def test_mail_to_any_local_part_of_a_verified_domain_reaches_the_addresses_target(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer], db_session: Session
) -> None:
    me = customer()
    me.serve(NAME)
    _deliver(edge, f"anyone@{NAME}", "first")
    _deliver(edge, "Sales.Team+q3@Shop.Example", "second")
    assert [envelope["to"] for envelope in _envelopes(target)] == [
        f"anyone@{NAME}",
        "Sales.Team+q3@Shop.Example",
    ]
    rows = history(db_session)
    assert [(row.resource_id, row.status) for row in rows] == [(me.box.resource_id, "201")] * 2


def test_the_forward_address_and_the_domain_share_one_post(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer]
) -> None:
    me = customer()
    me.serve(NAME)
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.sendmail(SENDER, [me.box.address, f"info@{NAME}"], message())
    assert [envelope["recipients"] for envelope in _envelopes(target)] == [[me.box.address, f"info@{NAME}"]]


def test_a_pattern_routes_only_the_local_parts_it_matches_whole_and_postmaster(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer]
) -> None:
    me = customer()
    me.serve(NAME, "orders|support(\\+.*)?")
    for accepted in ("orders", "ORDERS", "support", "support+ticket-9", "postmaster", "PostMaster"):
        assert _rcpt(edge, f"{accepted}@{NAME}") == ["250 2.1.5 OK"], accepted
    for refused in ("sales", "orders2", "xorders", "support-x", "a" * 60 + "orders"):
        assert _rcpt(edge, f"{refused}@{NAME}") == [UNKNOWN], refused
    _deliver(edge, f"postmaster@{NAME}")
    assert [envelope["to"] for envelope in _envelopes(target)] == [f"postmaster@{NAME}"]


def test_a_hostile_pattern_answers_at_once_on_a_64_character_local_part(
    edge: EdgeThread, customer: Callable[..., Customer]
) -> None:
    me = customer()
    me.serve(NAME, "(a+)+")  # catastrophic for a backtracking engine; RE2 runs it in linear time
    assert _rcpt(edge, f"{'a' * 63}!@{NAME}") == [UNKNOWN]
    assert _rcpt(edge, f"{'a' * 64}@{NAME}") == ["250 2.1.5 OK"]


def test_a_wildcard_serves_exactly_one_level_below_its_parent(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer]
) -> None:
    me = customer()
    me.serve(f"*.{NAME}")
    assert _rcpt(edge, f"anyone@eu.{NAME}") == ["250 2.1.5 OK"]
    assert _rcpt(edge, f"anyone@{NAME}") == [NOT_SERVED]
    assert _rcpt(edge, f"anyone@deep.eu.{NAME}") == [NOT_SERVED]
    assert _rcpt(edge, f"anyone@*.{NAME}") == [NOT_SERVED]
    _deliver(edge, f"anyone@EU.{NAME}")
    assert [envelope["to"] for envelope in _envelopes(target)] == [f"anyone@EU.{NAME}"]


def test_a_domains_own_row_outranks_the_wildcard_of_another_add_on(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer]
) -> None:
    wide, narrow = customer("/status/201"), customer("/status/200")
    narrow.zone, narrow.records = wide.zone, wide.records  # one DNS for both
    wide.serve(f"*.{NAME}")
    _deliver(edge, f"a@eu.{NAME}")
    narrow.serve(f"eu.{NAME}")
    _wait_for(lambda: f"@eu.{NAME}" not in _cache(edge)._entries, "the domain notice")
    _deliver(edge, f"b@eu.{NAME}")
    _deliver(edge, f"c@us.{NAME}")
    assert [envelope["to"] for envelope in _envelopes(target, "/status/201")] == [
        f"a@eu.{NAME}",
        f"c@us.{NAME}",
    ]
    assert [envelope["to"] for envelope in _envelopes(target, "/status/200")] == [f"b@eu.{NAME}"]


def test_a_second_add_on_cannot_claim_a_served_domain_and_mail_stays_with_the_first(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer]
) -> None:
    me, other = customer("/status/201"), customer("/status/200")
    me.serve(NAME)
    response = other.client.post(other.path("inbound_domains"), json={"name": NAME}, headers=other.auth)
    assert response.status_code == 409
    _deliver(edge, f"x@{NAME}")
    assert len(target.posts_to("/status/201")) == 1 and target.posts_to("/status/200") == []


def test_the_plans_limit_is_the_number_of_domains_served(
    edge: EdgeThread, customer: Callable[..., Customer]
) -> None:
    me = customer(plan="starter")
    me.serve(NAME)
    response = me.client.post(me.path("inbound_domains"), json={"name": "two.example"}, headers=me.auth)
    assert response.status_code == 403 and "starter plan allows 1" in response.json["error"]
    assert _rcpt(edge, "x@two.example") == [NOT_SERVED]


def test_deleting_a_domain_stops_routing_at_once_on_the_running_edge(
    edge: EdgeThread, customer: Callable[..., Customer]
) -> None:
    _wait_for(lambda: _cache(edge).listening, "the route cache to listen")
    me = customer()
    me.serve(NAME)
    _deliver(edge, f"x@{NAME}")
    assert f"@{NAME}" in _cache(edge)._entries
    before = _cache(edge).generation
    assert me.client.delete(me.path(f"inbound_domains/{NAME}"), headers=me.auth).status_code == 204
    _wait_for(lambda: _cache(edge).generation > before, "the domain notice")
    assert f"@{NAME}" not in _cache(edge)._entries
    assert _rcpt(edge, f"x@{NAME}") == [NOT_SERVED]


def test_deprovisioning_frees_the_domain_and_stops_routing_at_once_on_the_running_edge(
    edge: EdgeThread, customer: Callable[..., Customer], settings: Settings
) -> None:
    _wait_for(lambda: _cache(edge).listening, "the route cache to listen")
    me, other = customer("/status/201"), customer("/status/200")
    me.serve(NAME)
    _deliver(edge, f"x@{NAME}")
    assert f"@{NAME}" in _cache(edge)._entries
    before = _cache(edge).generation
    assert (
        partner_send(me.client, settings, "DELETE", f"/heroku/resources/{me.box.resource_id}").status_code
        == 204
    )
    _wait_for(
        lambda: _cache(edge).generation > before and f"@{NAME}" not in _cache(edge)._entries, "the notices"
    )
    assert _rcpt(edge, f"x@{NAME}") == [NOT_SERVED]
    other.zone, other.records = me.zone, {}
    other.serve(NAME)
    assert _rcpt(edge, f"x@{NAME}") == ["250 2.1.5 OK"]


def test_a_change_of_the_addresses_target_reaches_mail_to_its_domain(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer]
) -> None:
    _wait_for(lambda: _cache(edge).listening, "the route cache to listen")
    me = customer()
    me.serve(NAME)
    _deliver(edge, f"x@{NAME}", "before")
    before = _cache(edge).generation
    response = me.client.patch(
        me.path(f"addresses/{me.box.address_id}"), json={"target": target.url("/status/200")}, headers=me.auth
    )
    assert response.status_code == 200, response.json
    _wait_for(lambda: _cache(edge).generation > before, "the address notice")
    _deliver(edge, f"x@{NAME}", "after")
    assert [request.path for request in target.requests] == ["/status/201", "/status/200"]


def test_the_monthly_quota_holds_for_mail_to_a_domain_while_its_route_is_cached(
    edge: EdgeThread, customer: Callable[..., Customer], db_session: Session
) -> None:
    _wait_for(lambda: _cache(edge).listening, "the route cache to listen")
    me = customer(plan="starter")
    me.serve(NAME)
    count_inbound(db_session, me.box.resource_id, datetime.now(UTC), PLANS["starter"].inbound_per_month - 1)
    db_session.commit()
    _deliver(edge, f"x@{NAME}", "the last one the quota allows")
    assert f"@{NAME}" in _cache(edge)._entries
    assert _rcpt(edge, f"y@{NAME}")[0].startswith("452 4.2.2 ")
    assert _rcpt(edge, me.box.address)[0].startswith("452 4.2.2 ")


def test_a_unicode_domain_is_served_under_either_spelling(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer]
) -> None:
    me = customer()
    me.serve("Bücher.example")
    assert _rcpt(edge, "info@xn--bcher-kva.example") == ["250 2.1.5 OK"]
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    assert smtp.command(f"MAIL FROM:<{SENDER}> SMTPUTF8") == ["250 2.1.0 OK"]
    assert smtp.command("RCPT TO:<info@bücher.example>") == ["250 2.1.5 OK"]
    smtp.close()


def test_a_domain_refused_as_claimed_by_nobody_is_served_as_soon_as_a_claim_is_verified(
    edge: EdgeThread, customer: Callable[..., Customer]
) -> None:
    _wait_for(lambda: _cache(edge).listening, "the route cache to listen")
    me = customer()
    for recipient in (f"x@{NAME}", f"x@eu.{NAME}"):
        assert _rcpt(edge, recipient) == [NOT_SERVED]
    assert {NAME, f"eu.{NAME}"} <= set(_cache(edge)._unserved)  # the next relay attempt asks no one
    assert _rcpt(edge, f"x@{NAME}") == [NOT_SERVED]
    me.serve(f"*.{NAME}")
    _wait_for(lambda: f"eu.{NAME}" not in _cache(edge)._unserved, "the domain notice")
    assert _rcpt(edge, f"x@eu.{NAME}") == ["250 2.1.5 OK"]
    assert _rcpt(edge, f"x@{NAME}") == [NOT_SERVED]


def test_mail_to_a_custom_domain_goes_through_the_addresses_attachment_store(
    edge: EdgeThread, target: Target, customer: Callable[..., Customer], db_session: Session,
    settings: Settings, s3_server: S3Server,
) -> None:
    """The domain's route is the address's route, store included (it was once built without it)."""
    me = customer()
    address = db_session.get(Address, me.box.address_id)
    assert address is not None
    write_config(settings, address, StoreConfig(
        STORE_BUCKET, f"t-{uuid.uuid4().hex[:12]}", "us-east-1", s3_server.endpoint_url,
        s3_server.access_key_id, s3_server.secret_access_key, attachments=True, messages=False,
    ))
    db_session.commit()
    me.serve(NAME)
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.sendmail(SENDER, [f"billing@{NAME}"], with_attachments())
    (post,) = target.posts_to("/status/201")
    attachments = json.loads(post.body)["attachments"]
    assert attachments and all("url" in a and "content" not in a for a in attachments)
