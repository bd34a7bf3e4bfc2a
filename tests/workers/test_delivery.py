"""Outbound delivery against real receiving MXes (aiosmtpd on 127.0.0.x) found through a real DNS
server, run in-process through the delivery job (`workers.jobs.delivery`)."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dkim
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from provider.crypto import box_for
from provider.models import Domain, OutboundEvent, OutboundRecipient, Resource, Suppression
from provider.models.domain import SENDING
from provider.outbound.dkim import dns_record, new_key_pair
from provider.outbound.outgoing import Outgoing, from_api, from_smtp
from provider.outbound.request import read_request
from provider.services.sending import SendingPolicy, accept, new_message_id
from provider.settings import Settings
from tests.dnsserver import DnsServer
from tests.job_settings import settings_in_use
from tests.outbound.conftest import SENDING_DOMAIN, Account, new_account
from workers.jobs.delivery import close_runtime, deliver_message, runtime

from .mx_servers import MxState, mx_servers

BOUNCE_DOMAIN = "bounces.cloudmailin.test"
PRIVATE_KEY, PUBLIC_KEY = new_key_pair()
ZONE = {
    "example.com": {"MX": ["10 mx1.example.com"]},
    "mx1.example.com": {"A": ["127.0.0.2"]},
    # The preferred MX has nothing listening: the next one takes the mail.
    "example.org": {"MX": ["10 down.example.org", "20 mx2.example.org"]},
    "down.example.org": {"A": ["127.0.0.9"]},
    "mx2.example.org": {"A": ["127.0.0.3"]},
    "implicit.example": {"A": ["127.0.0.2"]},
    "nullmx.example": {"MX": ["0 ."]},
    f"cloudmailin._domainkey.{SENDING_DOMAIN}": {"TXT": [dns_record(PUBLIC_KEY)]},
}


@dataclasses.dataclass
class Delivery:
    settings: Settings
    mx: MxState
    account: Account
    db: Session

    def send(self, to: list[str] | str, **fields: object) -> uuid.UUID:
        body = {"from": f"Shop <orders@{SENDING_DOMAIN}>", "to": to, "subject": "Hi", "plain": "Hello\n",
                **fields}
        message_id = new_message_id()
        return self._store(from_api(read_request(body), str(message_id)), message_id)

    def submit(self, rcpt_tos: list[str], data: bytes) -> uuid.UUID:
        """As SMTP submission stores a message: the envelope's recipients, the DATA as sent."""
        message_id = new_message_id()
        return self._store(from_smtp(f"orders@{SENDING_DOMAIN}", rcpt_tos, data, str(message_id)), message_id)

    def _store(self, outgoing: Outgoing, message_id: uuid.UUID) -> uuid.UUID:
        resource = self.db.get(Resource, self.account.resource_id)
        assert resource is not None
        accept(self.db, SendingPolicy(True), resource, outgoing, message_id, wake=lambda s, m: None)
        self.db.commit()
        return message_id

    def deliver(self, message_id: uuid.UUID | None = None) -> dict[str, object]:
        with settings_in_use(self.settings):
            return deliver_message(str(message_id or uuid.uuid4()))

    def recipients(self, message_id: uuid.UUID) -> dict[str, OutboundRecipient]:
        self.db.expire_all()
        rows = self.db.scalars(select(OutboundRecipient).where(OutboundRecipient.message_id == message_id))
        return {row.address: row for row in rows}

    def due_now(self) -> None:
        """Skip the backoff wait: every deferred recipient is due at once."""
        self.db.execute(
            update(OutboundRecipient)
            .where(OutboundRecipient.state == "deferred")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        self.db.commit()


@pytest.fixture
def delivery(db_session: Session, settings: Settings) -> Iterator[Delivery]:
    account = new_account(db_session, settings)
    domain = db_session.scalar(select(Domain).where(Domain.resource_id == account.resource_id))
    assert domain is not None and domain.kind == SENDING
    domain.dkim_selector = "cloudmailin"
    domain.dkim_private_key_enc = box_for(settings).encrypt(PRIVATE_KEY)
    db_session.commit()
    with DnsServer(ZONE) as dns_server, mx_servers("127.0.0.2", "127.0.0.3") as (state, port):
        pointed = dataclasses.replace(
            settings,
            dns_nameservers=dns_server.nameservers,
            outbound_mx_port=port,
            bounce_domain=BOUNCE_DOMAIN,
            outbound_command_timeout=2.0,
        )
        try:
            yield Delivery(pointed, state, account, db_session)
        finally:
            with settings_in_use(pointed):
                if runtime().settings is pointed:
                    close_runtime()


def _events(db: Session, recipient: OutboundRecipient) -> list[tuple[str, str | None]]:
    rows = db.scalars(select(OutboundEvent).where(OutboundEvent.recipient_id == recipient.id)
                      .order_by(OutboundEvent.id))
    return [(event.state, event.reply) for event in rows]


def test_a_message_is_delivered_to_the_mx_signed_and_with_a_verp_sender(delivery: Delivery) -> None:
    message_id = delivery.send(["ann@example.com", "bo@example.com"], headers={"X-Order": "42"})
    report = delivery.deliver(message_id)
    assert report["delivered"] == 2
    (received,) = delivery.mx.received  # one transaction for both recipients of the domain
    assert received.mail_from == f"bounces+{message_id}@{BOUNCE_DOMAIN}"
    assert received.rcpt_tos == ["ann@example.com", "bo@example.com"]
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", received.data) is None
    assert b"X-Order: 42\r\n" in received.data

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        expected = f"cloudmailin._domainkey.{SENDING_DOMAIN}"
        return dns_record(PUBLIC_KEY).encode() if name.decode().rstrip(".") == expected else b""

    assert received.data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(received.data, dnsfunc=dnsfunc)
    for row in delivery.recipients(message_id).values():
        assert (row.state, row.attempts, row.next_attempt_at) == ("delivered", 1, None)
        assert row.last_reply == "250 2.0.0 Queued on the receiving side"
        assert [state for state, _ in _events(delivery.db, row)] == ["queued", "delivered"]


def test_recipients_of_several_domains_each_go_to_their_own_mx(delivery: Delivery) -> None:
    message_id = delivery.send(["ann@example.com", "cy@example.org", "di@implicit.example"])
    delivery.deliver(message_id)
    by_host = sorted((r.host, tuple(r.rcpt_tos)) for r in delivery.mx.received)
    assert by_host == [("127.0.0.2", ("ann@example.com",)), ("127.0.0.2", ("di@implicit.example",)),
                       ("127.0.0.3", ("cy@example.org",))]
    rows = delivery.recipients(message_id)
    assert {a: r.state for a, r in rows.items()} == dict.fromkeys(rows, "delivered")
    events = delivery.db.scalars(select(OutboundEvent.mx).where(OutboundEvent.state == "delivered")).all()
    assert sorted(events) == ["implicit.example", "mx1.example.com", "mx2.example.org"]


def test_a_temporary_refusal_is_deferred_on_the_schedule_and_delivered_on_the_retry(
    delivery: Delivery,
) -> None:
    message_id = delivery.send("defer-once-ann@example.com")
    before = datetime.now(UTC)
    delivery.deliver(message_id)
    row = delivery.recipients(message_id)["defer-once-ann@example.com"]
    assert (row.state, row.attempts, row.last_reply) == ("deferred", 1, "451 4.3.0 Try again later")
    assert row.next_attempt_at is not None
    assert timedelta(seconds=55) <= row.next_attempt_at - before <= timedelta(seconds=70)
    assert delivery.mx.received == []
    delivery.deliver()  # not due yet: nothing is attempted
    assert delivery.recipients(message_id)["defer-once-ann@example.com"].attempts == 1
    delivery.due_now()
    delivery.deliver()
    row = delivery.recipients(message_id)["defer-once-ann@example.com"]
    assert (row.state, row.attempts) == ("delivered", 2)
    assert [s for s, _ in _events(delivery.db, row)] == ["queued", "deferred", "delivered"]
    assert len(delivery.mx.received) == 1


def test_a_permanent_refusal_bounces_and_suppresses_only_that_address(delivery: Delivery) -> None:
    message_id = delivery.send(["reject-ann@example.com", "bo@example.com"])
    delivery.deliver(message_id)
    rows = delivery.recipients(message_id)
    assert rows["reject-ann@example.com"].state == "bounced"
    assert rows["reject-ann@example.com"].last_reply == "550 5.1.1 No such user here"
    assert rows["bo@example.com"].state == "delivered"
    assert delivery.db.scalars(select(Suppression.address)).all() == ["reject-ann@example.com"]
    later = delivery.send("Reject-Ann@example.com")
    assert delivery.recipients(later)["Reject-Ann@example.com"].state == "suppressed"


def test_a_content_refusal_bounces_without_suppressing_the_address(delivery: Delivery) -> None:
    message_id = delivery.send("spam-ann@example.com")
    delivery.deliver(message_id)
    row = delivery.recipients(message_id)["spam-ann@example.com"]
    assert (row.state, row.last_reply) == ("bounced", "554 5.7.1 Message rejected as spam")
    assert delivery.db.scalar(select(Suppression.address)) is None


@pytest.mark.parametrize(
    ("recipient", "reply"),
    [
        ("drop-ann@example.com", "451 4.4.2 mx1.example.com closed the connection"),
        ("hang-ann@example.com", "451 4.4.2 mx1.example.com did not answer in time"),
    ],
)
def test_a_dropped_or_silent_connection_is_deferred(delivery: Delivery, recipient: str, reply: str) -> None:
    message_id = delivery.send(recipient)
    delivery.deliver(message_id)
    row = delivery.recipients(message_id)[recipient]
    assert (row.state, row.last_reply) == ("deferred", reply)


@pytest.mark.parametrize(
    ("recipient", "reply"),
    [
        ("ann@nullmx.example", "556 5.1.10 Domain nullmx.example accepts no mail (null MX, RFC 7505)"),
        ("ann@nowhere.example", "550 5.1.2 Domain nowhere.example does not exist"),
    ],
)
def test_a_domain_that_takes_no_mail_bounces_at_once(delivery: Delivery, recipient: str, reply: str) -> None:
    message_id = delivery.send(recipient)
    delivery.deliver(message_id)
    row = delivery.recipients(message_id)[recipient]
    assert (row.state, row.last_reply, row.attempts) == ("bounced", reply, 1)


def test_a_message_deferred_past_its_lifetime_has_its_retries_exhausted(delivery: Delivery) -> None:
    message_id = delivery.send("defer-once-old@example.com")
    delivery.db.execute(
        text("UPDATE outbound_messages SET created_at = now() - interval '47 hours 59 minutes 30 seconds'")
    )
    delivery.db.commit()
    delivery.deliver(message_id)
    row = delivery.recipients(message_id)["defer-once-old@example.com"]
    assert row.state == "deferred"  # one last try at the 48 h mark
    delivery.db.execute(text("UPDATE outbound_messages SET created_at = now() - interval '49 hours'"))
    delivery.mx.seen.clear()  # it defers again
    delivery.db.commit()
    delivery.due_now()
    delivery.deliver()
    row = delivery.recipients(message_id)["defer-once-old@example.com"]
    assert (row.state, row.next_attempt_at) == ("retries_exhausted", None)


def test_connections_are_reused_for_a_burst_to_one_host(delivery: Delivery) -> None:
    ids = [delivery.send(f"r{i}@example.com") for i in range(30)]
    before = delivery.mx.connections  # the servers' own start-up probes
    delivery.deliver(ids[0])
    assert len(delivery.mx.received) == 30
    assert all(r.state == "delivered" for i in ids for r in delivery.recipients(i).values())
    assert delivery.mx.connections - before <= 10  # at most one per concurrent slot to the host
    again = delivery.send("later@example.com")
    delivery.deliver(again)
    assert delivery.mx.connections - before <= 10  # the next message reuses an open connection


def test_a_recipient_claimed_by_one_run_is_not_sent_again_by_another(delivery: Delivery) -> None:
    message_id = delivery.send("ann@example.com")
    delivery.deliver(message_id)
    delivery.due_now()
    delivery.deliver(message_id)
    delivery.deliver()
    assert len(delivery.mx.received) == 1


def test_a_submitted_message_arrives_without_cloudmta_headers_bcc_or_bare_line_endings(
    delivery: Delivery,
) -> None:
    data = (
        f"From: Shop <orders@{SENDING_DOMAIN}>\nTo: ann@example.com\nBcc: hidden@example.com\n"
        "Subject: Submitted\nX-CloudMTA-Class: priority\nx-cloudmta-tags: a, b\n\nline one\rline two\n"
    ).encode()
    message_id = delivery.submit(["ann@example.com", "hidden@example.com"], data)
    delivery.deliver(message_id)
    received = {tuple(r.rcpt_tos): r.data for r in delivery.mx.received}
    (sent,) = set(received.values())
    assert set(received) == {("ann@example.com", "hidden@example.com")}
    assert b"cloudmta" not in sent.lower()
    assert re.search(rb"(?im)^bcc:", sent) is None
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", sent) is None
    assert sent.endswith(b"\r\n\r\nline one\r\nline two\r\n")
