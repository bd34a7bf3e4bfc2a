"""Reading delivery status notifications, the hard-bounce rule they share with SMTP replies,
and the VERP address a bounce names its message by."""

from __future__ import annotations

import uuid

import pytest

from provider.outbound.bounce_rules import is_hard_bounce, is_hard_status
from provider.outbound.dsn import MAX_READ_BYTES, NotADeliveryReport, parse_report
from provider.outbound.verp import message_id_of
from tests.inbound.samples import CORPUS, corpus_part
from workers.delivery.engine import bounce_address
from workers.delivery.transport import Reply

BOUNCES = CORPUS / "flanker" / "bounce"

REPORT = (
    b"From: MAILER-DAEMON@mx.remote.example\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.remote.example\r\n\r\n"
    b"Final-Recipient: rfc822; <One@Remote.example>\r\nAction: Failed\r\nStatus: 5.1.1 (bad mailbox)\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 No such\r\n user here\r\n\r\n"
    b"Final-Recipient: rfc822;two@remote.example\r\nAction: delayed\r\nStatus: 4.4.7\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: the original\r\n\r\n"
)


def test_each_recipient_block_is_read_with_its_action_status_and_diagnostic() -> None:
    report = parse_report(REPORT + b"body\r\n--b--\r\n")
    assert report.reporting_mta == "mx.remote.example"
    one, two = report.recipients
    assert (one.recipient, one.action, one.status) == ("One@Remote.example", "failed", "5.1.1")
    assert (one.diagnostic_type, one.diagnostic) == ("smtp", "550 5.1.1 No such user here")
    assert (two.recipient, two.action, two.status, two.diagnostic) == (
        "two@remote.example", "delayed", "4.4.7", None)


def test_a_huge_returned_message_is_cut_after_the_report_is_read() -> None:
    huge = REPORT + b"x" * (3 * MAX_READ_BYTES)  # no closing boundary survives the cut either
    assert [r.status for r in parse_report(huge).recipients] == ["5.1.1", "4.4.7"]


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: Out of office\r\n\r\nAway until Monday.\r\n",
        b'Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\nContent-Type: message/delivery-status'
        b"\r\n\r\nReporting-MTA: dns; x\r\n\r\n--b--\r\n",
        b"",
        b"\xff\xfe\x00garbage\r\n\r\n\x00",
    ],
    ids=["no report", "no recipient block", "empty", "binary"],
)
def test_mail_without_a_readable_report_is_refused_by_name(raw: bytes) -> None:
    with pytest.raises(NotADeliveryReport):
        parse_report(raw)


def test_a_global_delivery_status_part_is_read_too() -> None:
    raw = (
        b'Content-Type: multipart/report; report-type=global-delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: message/global-delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        b"Final-Recipient: utf-8; j\xc3\xb6rg@example.de\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
    (only,) = parse_report(raw).recipients
    assert (only.recipient, only.status) == ("jörg@example.de", "5.1.1")


@pytest.mark.parametrize(
    ("status", "diagnostic", "hard"),
    [
        ("5.1.1", None, True),
        ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound", True),
        ("5.2.2", "552 5.2.2 mailbox full", False),
        ("5.7.1", "550 5.7.1 spam", False),
        ("4.1.1", None, False),
        ("5.0.0", "550 No such user", True),
        ("5.0.0", "550 5.7.1 Policy", False),
        ("5.0.0", None, False),
        ("", None, False),
    ],
)
def test_a_report_is_hard_by_the_same_rule_as_a_reply(
    status: str, diagnostic: str | None, hard: bool
) -> None:
    assert is_hard_status(status, diagnostic) is hard


def test_the_reply_rule_still_reads_smtp_replies() -> None:
    assert is_hard_bounce(Reply(550, "550 5.1.1 No such user"))
    assert is_hard_bounce(Reply(553, "553 mailbox name not allowed"))
    assert not is_hard_bounce(Reply(550, "550 5.7.1 Rejected as spam"))
    assert not is_hard_bounce(Reply(450, "450 4.1.1 try later"))


def test_the_bounce_address_names_its_message_in_any_case() -> None:
    message_id = uuid.uuid4()
    local = bounce_address(message_id, "bounces.example").split("@")[0]
    assert message_id_of(local) == message_id
    assert message_id_of(local.upper()) == message_id
    for other in ("bounces", "bounces+", f"bounces+{message_id.hex}", f"bounces+{{{message_id}}}", "someone"):
        assert message_id_of(other) is None


def test_every_corpus_bounce_with_a_report_is_read() -> None:
    corpus_part(BOUNCES)
    read = {}
    for path in sorted(BOUNCES.glob("*.eml")):
        try:
            read[path.name] = [(r.action, r.status) for r in parse_report(path.read_bytes()).recipients]
        except NotADeliveryReport:
            read[path.name] = []
    assert read == {
        "broken-mime.eml": [],
        "delayed-broken.eml": [("failed", "4.2.2")],
        "delayed.eml": [("failed", "4.0.0")],
        "gmail-invalid-address.eml": [],
        "gmail-no-dns.eml": [],
        "mailbox-full.eml": [("failed", "5.2.2")],
        "no-mx.eml": [("delayed", "4.4.4")],
        "office365.eml": [("failed", "5.1.10")],
        "zed.eml": [("failed", "5.1.1")],
    }
