"""`X-CloudMailin-Delivery-Id`: a target can recognise a message it already has when the sender
retries it (the edge died after the target answered and before the sender heard 250)."""

from __future__ import annotations

import re
import smtplib
import threading
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session

from provider.inbound.delivery_id import HEADER, delivery_id
from provider.models import Address
from provider.settings import Settings

from .conftest import SENDER, EdgeThread, Mailbox, Target, message, running_edge, send

HEX_ID = re.compile(r"[0-9a-f]{64}")


def ids(target: Target) -> list[str]:
    found = [post.header(HEADER) for post in target.requests]
    assert all(value is not None and HEX_ID.fullmatch(value) for value in found), found
    return [value for value in found if value is not None]


def test_the_same_message_sent_twice_carries_the_same_delivery_id(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    raw = message("Order 42", "Please ship it.\r\n")
    assert send(edge, [box.address], raw) == {}
    assert send(edge, [box.address], raw) == {}
    first, second = ids(target)
    assert first == second


def test_different_messages_never_share_a_delivery_id(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    base = message("Order 42", "Please ship it.\r\n")
    variants = [
        base,
        base.replace(b"ship", b"Ship"),  # one byte of the body
        base + b"\r\n",  # one more line
        message("Order 42", "Please ship it.\r\n"),  # the same text with another Message-ID
        message("Order 43", "Please ship it.\r\n"),
    ]
    for raw in variants:
        assert send(edge, [box.address], raw) == {}
    assert len(set(ids(target))) == len(variants)


def test_the_same_message_to_two_addresses_or_tags_gets_different_ids(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    one, other = mailbox("/status/200"), mailbox("/status/200")
    raw = message()
    recipients = [one.address, other.address, one.address.replace("@", "+tag@")]
    for recipient in recipients:
        assert send(edge, [recipient], raw) == {}
    assert len(set(ids(target))) == len(recipients)


def test_a_post_that_is_redirected_keeps_its_delivery_id(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/redirect?to=/status/201&code=307")
    assert send(edge, [box.address], message()) == {}
    redirected, final = ids(target)
    assert redirected == final


def test_a_message_retried_after_the_edge_was_killed_mid_post_carries_the_same_id(
    edge_settings: Settings, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/never")  # the target has the message; the edge never hears back
    raw = message("Invoice", "Attached.\r\n")
    outcome: list[BaseException] = []

    def first_attempt(port: int) -> None:
        try:
            send_to(port, [box.address], raw)
        except (smtplib.SMTPException, OSError) as exc:
            outcome.append(exc)

    with running_edge(edge_settings) as (process, port):
        sender = threading.Thread(target=first_attempt, args=(port,))
        sender.start()
        target.wait_for("/never")
        process.kill()  # SIGKILL: no reply reaches the sender
        process.wait(30)
        sender.join(30)
    assert len(outcome) == 1, "the sender must not have been told 250"

    # The sender's MTA retries later, to an edge that is back; the target answers this time.
    db_session.execute(
        update(Address).where(Address.id == box.address_id).values(target_url=target.url("/status/200"))
    )
    db_session.commit()
    with running_edge(edge_settings) as (_, port):
        assert send_to(port, [box.address], raw) == {}

    first, retried = ids(target)
    assert [post.path for post in target.requests] == ["/never", "/status/200"]
    assert first == retried


def send_to(port: int, to: list[str], raw: bytes) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as client:
        return client.sendmail(SENDER, to, raw)


def test_the_id_covers_route_recipients_and_bytes_unambiguously() -> None:
    raw = b"Subject: s\r\n\r\nbody\r\n"
    same = delivery_id("address:1", ["A@x.test", "b@x.test", "a@x.test"], raw)
    assert same == delivery_id("address:1", ["b@x.test", "a@x.test"], raw)  # order, case, repeats
    others = {
        delivery_id("address:2", ["a@x.test", "b@x.test"], raw),
        delivery_id("address:1", ["a@x.test"], raw),
        delivery_id("address:1", ["a@x.testb@x.test"], raw),
        delivery_id("address:1a@x.test", ["b@x.test"], raw),
        delivery_id("address:1", ["a@x.test", "b@x.test"], raw + b" "),
    }
    assert same not in others and len(others) == 5
