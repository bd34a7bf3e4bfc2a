"""DKIM, DMARC and ARC results through the real edge: messages signed (and sealed) by dkimpy
with a key the DNS server on 127.0.0.1 publishes, in every payload format, in the history and
its filters."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provider.models import Resource
from provider.outbound.dkim import dns_record
from provider.services.credentials import issue_credential
from provider.settings import Settings
from tests.dnsserver import DnsServer

from .conftest import SENDER, SENDER_DOMAIN, SPF_ZONE, EdgeThread, Mailbox, Target, history, send
from .test_arc import sealed
from .test_dkim_dmarc import KEY, PUBLIC, signed

AUTH_ZONE = {
    f"sel._domainkey.{SENDER_DOMAIN}": {"TXT": [dns_record(PUBLIC)]},
    f"_dmarc.{SENDER_DOMAIN}": {"TXT": ["v=DMARC1; p=quarantine"]},
    "_dmarc.brand.example": {"TXT": ["v=DMARC1; p=reject"]},
    "sel._domainkey.forwarder.example": {"TXT": [dns_record(PUBLIC)]},
}
PASS = {"domain": SENDER_DOMAIN, "selector": "sel", "result": "pass"}


@pytest.fixture
def auth_dns(dns_server: DnsServer) -> Iterator[DnsServer]:
    dns_server.set_records({**SPF_ZONE, **AUTH_ZONE})
    try:
        yield dns_server
    finally:
        dns_server.set_records(SPF_ZONE)


def mail(from_address: str = SENDER, body: str = "Please ship order 42.\r\n") -> bytes:
    raw = (
        f"From: Someone <{from_address}>\r\nTo: box@cloudmailin.test\r\nSubject: Order 42\r\n"
        f"Message-ID: <42@{SENDER_DOMAIN}>\r\n\r\n{body}"
    ).encode()
    return signed(raw, SENDER_DOMAIN, "sel", key=KEY)


def envelope_of(target: Target) -> dict[str, Any]:
    (post,) = target.requests
    envelope: dict[str, Any] = json.loads(post.body)["envelope"]
    return envelope


@pytest.mark.usefixtures("auth_dns")
def test_a_signed_message_arrives_with_dkim_and_dmarc_pass(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/201")
    assert send(edge, [box.address], mail()) == {}
    envelope = envelope_of(target)
    assert envelope["dkim"] == [PASS]
    assert envelope["dmarc"] == {"result": "pass", "domain": SENDER_DOMAIN, "policy": "quarantine"}
    assert list(envelope)[-3:] == ["dkim", "dmarc", "arc"]  # after md5, as the spec lists them
    assert envelope["arc"] == {"result": "none", "instances": 0}  # not forwarded with ARC
    (row,) = history(db_session)
    assert (row.dkim_result, row.dmarc_result) == ("pass", "pass")


@pytest.mark.usefixtures("auth_dns")
def test_a_body_altered_after_signing_is_dkim_fail_and_dmarc_still_passes_on_spf(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/201")
    raw = mail().replace(b"order 42", b"order 666")
    assert send(edge, [box.address], raw) == {}
    envelope = envelope_of(target)
    assert envelope["dkim"] == [{**PASS, "result": "fail"}]
    assert envelope["spf"] == {"result": "pass", "domain": SENDER_DOMAIN}  # aligned with From
    assert envelope["dmarc"]["result"] == "pass"
    (row,) = history(db_session)
    assert (row.dkim_result, row.dmarc_result) == ("fail", "pass")


@pytest.mark.usefixtures("auth_dns")
def test_an_unaligned_from_under_a_reject_policy_is_dmarc_fail_and_still_delivered(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/201")
    # Signed by sender.example and sent from its address, but From claims brand.example.
    assert send(edge, [box.address], mail("ceo@brand.example")) == {}
    envelope = envelope_of(target)
    assert envelope["dkim"] == [PASS]
    assert envelope["dmarc"] == {"result": "fail", "domain": "brand.example", "policy": "reject"}
    (row,) = history(db_session)
    assert (row.status, row.dkim_result, row.dmarc_result) == ("201", "pass", "fail")


@pytest.mark.usefixtures("auth_dns")
def test_an_unsigned_message_has_an_empty_dkim_list(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/201")
    raw = b"From: someone@brand.example\r\nSubject: hi\r\n\r\nHi\r\n"
    send(edge, [box.address], raw)
    envelope = envelope_of(target)
    assert envelope["dkim"] == []
    assert envelope["dmarc"] == {"result": "fail", "domain": "brand.example", "policy": "reject"}
    (row,) = history(db_session)
    assert (row.dkim_result, row.dmarc_result) == ("none", "fail")


@pytest.mark.usefixtures("auth_dns")
def test_a_forwarded_message_arrives_with_its_arc_chain(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/201")
    send(edge, [box.address], sealed(mail()))
    envelope = envelope_of(target)
    assert envelope["arc"] == {"result": "pass", "instances": 1}
    assert envelope["dkim"] == [PASS]


@pytest.mark.usefixtures("auth_dns")
def test_a_message_altered_after_its_seal_arrives_with_arc_fail(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/201")
    send(edge, [box.address], sealed(mail()).replace(b"order 42", b"order 666"))
    assert envelope_of(target)["arc"] == {"result": "fail", "instances": 1}


@pytest.mark.usefixtures("auth_dns")
@pytest.mark.parametrize("fmt", ["multipart", "raw"])
def test_form_formats_carry_the_arc_result_in_bracket_names(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], fmt: str
) -> None:
    box = mailbox("/status/201", fmt=fmt)
    send(edge, [box.address], sealed(mail()))
    (post,) = target.requests
    fields = post.form()
    assert fields["envelope[arc][result]"] == b"pass"
    assert fields["envelope[arc][instances]"] == b"1"


@pytest.mark.usefixtures("auth_dns")
@pytest.mark.parametrize("fmt", ["multipart", "raw"])
def test_form_formats_carry_the_results_in_bracket_names(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], fmt: str
) -> None:
    box = mailbox("/status/201", fmt=fmt)
    send(edge, [box.address], mail("ceo@brand.example"))
    (post,) = target.requests
    fields = post.form()
    assert fields["envelope[dkim][0][domain]"] == SENDER_DOMAIN.encode()
    assert fields["envelope[dkim][0][selector]"] == b"sel"
    assert fields["envelope[dkim][0][result]"] == b"pass"
    assert fields["envelope[dmarc][result]"] == b"fail"
    assert fields["envelope[dmarc][policy]"] == b"reject"
    assert fields["envelope[dmarc][domain]"] == b"brand.example"


@pytest.mark.usefixtures("auth_dns")
def test_raw_json_carries_the_results(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/201", fmt="raw_json")
    send(edge, [box.address], mail())
    assert envelope_of(target)["dkim"] == [PASS]


@pytest.mark.usefixtures("auth_dns")
def test_the_history_filters_by_dkim_and_dmarc_results(
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    db_session: Session,
    settings: Settings,
    client: FlaskClient,
) -> None:
    box = mailbox("/status/201")
    send(edge, [box.address], mail())
    send(edge, [box.address], mail("ceo@brand.example").replace(b"Order 42", b"Spoof"))
    resource = db_session.get(Resource, box.resource_id)
    assert resource is not None
    credential = issue_credential(db_session, settings, resource)
    db_session.commit()

    def subjects(query: str) -> list[str]:
        response = client.get(
            f"/api/v0.1/{credential.username}/incoming_statuses?{query}",
            headers={"Authorization": f"Bearer {credential.key}"},
        )
        assert response.status_code == 200, response.get_json()
        return [s["subject"] for s in response.get_json()["incoming_statuses"]]

    assert subjects("dkim=pass") == ["Order 42"]
    assert subjects("dkim=fail") == ["Spoof"]  # the signed Subject was changed
    assert subjects("dmarc=fail") == ["Spoof"]
    assert subjects("dmarc=pass&dkim=pass") == ["Order 42"]
    assert subjects("dmarc=none") == []
    first = client.get(
        f"/api/v0.1/{credential.username}/incoming_statuses?dmarc=pass",
        headers={"Authorization": f"Bearer {credential.key}"},
    ).get_json()["incoming_statuses"][0]
    assert (first["dkim"], first["dmarc"]) == ("pass", "pass")
