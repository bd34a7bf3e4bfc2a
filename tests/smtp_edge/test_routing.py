"""Which recipients the MX accepts at RCPT, and how a transaction's recipients share POSTs."""

from __future__ import annotations

import json
import logging
import smtplib
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from provider.models.resource import DEPROVISIONED, PROVISIONING

from .conftest import (
    SENDER,
    Conversation,
    EdgeThread,
    Mailbox,
    Target,
    message,
    open_transaction,
    talk,
)


def rcpt_reply(edge: EdgeThread, recipient: str) -> list[str]:
    smtp = open_transaction(edge.mx_port)
    try:
        return smtp.command(f"RCPT TO:<{recipient}>")
    finally:
        smtp.close()


def test_an_unknown_forward_address_is_refused_as_no_such_user(edge: EdgeThread) -> None:
    assert rcpt_reply(edge, "0123456789abcdef0123@cloudmailin.test") == [
        "550 5.1.1 No such recipient here"
    ]


@pytest.mark.parametrize(
    "local", ["not-hex", "0123456789abcdef012", "0123456789abcdef01234", '"x"']
)
def test_local_parts_that_cannot_be_an_address_are_refused(edge: EdgeThread, local: str) -> None:
    assert rcpt_reply(edge, f"{local}@cloudmailin.test") == ["550 5.1.1 No such recipient here"]


def test_a_deprovisioned_resource_no_longer_receives_mail(
    edge: EdgeThread, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox(state=DEPROVISIONED)
    assert rcpt_reply(edge, box.address) == ["550 5.1.1 No such recipient here"]


def test_a_resource_still_provisioning_already_receives_mail(
    edge: EdgeThread, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox(state=PROVISIONING)
    assert rcpt_reply(edge, box.address) == ["250 2.1.5 OK"]


def test_an_address_without_a_target_is_refused_saying_so(
    edge: EdgeThread, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox(target_url="")
    assert rcpt_reply(edge, box.address) == ["550 5.2.1 This address has no target URL configured"]


@pytest.mark.parametrize("domain", ["example.com", "cloudmailin.test.evil.example", "[127.0.0.1]"])
def test_domains_not_served_here_are_never_relayed(edge: EdgeThread, domain: str) -> None:
    assert rcpt_reply(edge, f"postmaster@{domain}") == [
        "550 5.7.1 Relaying denied: this server only accepts mail for the domains it serves"
    ]


def test_the_domain_and_local_id_match_case_insensitively(
    edge: EdgeThread, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox()
    assert rcpt_reply(edge, f"{box.local_id.upper()}+Tag@CloudMailin.TEST") == ["250 2.1.5 OK"]


def test_recipients_of_one_address_share_one_post_and_to_is_the_first(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    first, second = box.address.replace("@", "+a@"), box.address.replace("@", "+b@")
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        assert client.sendmail(SENDER, [first, second], message()) == {}
    (post,) = target.requests
    envelope = json.loads(post.body)["envelope"]
    assert envelope["to"] == first
    assert envelope["recipients"] == [first, second]


def test_recipients_of_a_second_target_are_deferred_to_another_transaction(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    one, two = mailbox("/status/200"), mailbox("/status/201")
    smtp = Conversation(edge.mx_port)
    talk(
        smtp,
        [
            ("EHLO client.example", smtp.command("EHLO client.example")),
            (f"MAIL FROM:<{SENDER}>", ["250 2.1.0 OK"]),
            (f"RCPT TO:<{one.address}>", ["250 2.1.5 OK"]),
            (
                f"RCPT TO:<{two.address}>",
                ["452 4.5.3 Recipients for another target must be sent in a separate transaction"],
            ),
            (f"RCPT TO:<{one.address.replace('@', '+x@')}>", ["250 2.1.5 OK"]),
            ("DATA", ["354 End data with <CR><LF>.<CR><LF>"]),
            (
                "Subject: split\r\n\r\nbody\r\n.",
                ["250 2.0.0 Message accepted by the target (HTTP 200)"],
            ),
            (f"MAIL FROM:<{SENDER}>", ["250 2.1.0 OK"]),
            (f"RCPT TO:<{two.address}>", ["250 2.1.5 OK"]),
            ("DATA", ["354 End data with <CR><LF>.<CR><LF>"]),
            (
                "Subject: split\r\n\r\nbody\r\n.",
                ["250 2.0.0 Message accepted by the target (HTTP 201)"],
            ),
        ],
    )
    assert [r.path for r in target.requests] == ["/status/200", "/status/201"]


def test_smtplib_retries_nothing_but_reports_the_deferred_recipient(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    one, two = mailbox("/status/200"), mailbox("/status/201")
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        refused = client.sendmail(SENDER, [one.address, two.address], message())
    assert refused == {
        two.address: (
            452,
            b"4.5.3 Recipients for another target must be sent in a separate transaction",
        )
    }
    assert [r.path for r in target.requests] == ["/status/200"]


def test_postmaster_is_accepted_and_logged_when_no_operator_target_is_set(
    edge: EdgeThread, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smtp_edge.mx")
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.ehlo("client.example")
        client.mail(SENDER)
        assert client.rcpt("PostMaster@cloudmailin.test") == (250, b"2.1.5 OK")
        assert client.data(message("Abuse report")) == (250, b"2.0.0 Accepted for the postmaster")
    assert target.requests == []
    assert any("subject='Abuse report'" in r.getMessage() for r in caplog.records)


def test_postmaster_mail_goes_to_the_operator_target_when_set(
    edge: EdgeThread, target: Target
) -> None:
    edge.restart(postmaster_target_url=target.url("/status/202"))
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        assert client.sendmail("<>", ["postmaster@cloudmailin.test"], message("Bounce")) == {}
    (post,) = target.requests
    assert json.loads(post.body)["envelope"]["to"] == "postmaster@cloudmailin.test"
    assert post.header("x-cloudmailin-signature") is None


def test_postmaster_is_a_target_of_its_own(
    edge: EdgeThread, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox()
    smtp = open_transaction(edge.mx_port, box.address)
    assert smtp.command("RCPT TO:<postmaster@cloudmailin.test>")[0].startswith("452 4.5.3 ")


def test_a_transaction_takes_at_most_100_recipients(
    edge: EdgeThread, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox()
    smtp = open_transaction(edge.mx_port)
    for n in range(100):
        assert smtp.command(f"RCPT TO:<{box.local_id}+{n}@cloudmailin.test>") == ["250 2.1.5 OK"]
    assert smtp.command(f"RCPT TO:<{box.address}>") == [
        "452 4.5.3 Too many recipients in one transaction"
    ]
