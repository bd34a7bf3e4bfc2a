"""The target answers of the spec's table that test_delivery.py does not already pin with both the
SMTP reply and the recorded status, and the Raw format end to end.

Covered elsewhere (test_delivery.py): 201, 30x (followed), a redirect loop, 403 with a quoted
plain-text reason, 404 cut at 400 characters, 422 as JSON, 500, 503, a target that never answers,
a refused connection.
"""

from __future__ import annotations

import hashlib
import smtplib
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.inbound import Payload
from provider.models import InboundMessage
from tests.inbound.samples import form_parts

from .conftest import SENDER, SENDER_DOMAIN, EdgeThread, Mailbox, Target, message


def send(edge: EdgeThread, to: list[str], raw: bytes) -> tuple[int, str]:
    """The reply to the end of DATA, exactly as the edge sent it (accepted or not)."""
    with smtplib.SMTP("127.0.0.1", edge.mx_port, local_hostname="client.example") as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        for recipient in to:
            assert client.rcpt(recipient)[0] == 250
        code, text = client.data(raw)
    return code, text.decode()


@pytest.mark.parametrize(
    ("path", "reply", "recorded_body"),
    [
        ("/status/200", (250, "2.0.0 Message accepted by the target (HTTP 200)"), None),
        (
            "/status/404?reason=No%20such%20mailbox%3A%20orders",
            (550, "5.0.0 Target rejected the message (HTTP 404): No such mailbox: orders"),
            "No such mailbox: orders\nsecond line is not shown\n",
        ),
        (
            "/status/422?reason=Unprocessable%3A%20missing%20order%20number",
            (550, "5.0.0 Target rejected the message (HTTP 422): Unprocessable: missing order number"),
            "Unprocessable: missing order number\nsecond line is not shown\n",
        ),
    ],
    ids=["200", "404 text/plain", "422 text/plain"],
)
def test_the_targets_answer_sets_the_smtp_reply_and_the_recorded_status(
    path: str,
    reply: tuple[int, str],
    recorded_body: str | None,
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    db_session: Session,
) -> None:
    box = mailbox(path)
    assert send(edge, [box.address], message()) == reply
    assert len(target.requests) == 1
    db_session.expire_all()
    (row,) = db_session.scalars(select(InboundMessage))
    code = int(path.removeprefix("/status/")[:3])
    assert (row.status, row.http_status, row.smtp_reply) == (
        str(code),
        code,
        f"{reply[0]} {reply[1]}",
    )
    assert row.response_body == recorded_body


RAW = (
    b"From: Someone <someone@sender.example>\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= raw\r\n"
    b"X-Trailing: spaces and a tab \t \r\n"
    b"\r\n"
    b".a line that starts with a dot\r\n"
    b"latin-1 bytes: caf\xe9 \xff\xfe\r\n"
    b"a bare LF\nand a bare CR\rstay inside this line\r\n"
    b"\x00 a NUL too\r\n"
    b"no final line end"
)


def test_the_raw_format_posts_the_message_byte_for_byte_with_the_envelope(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200", fmt="raw")
    tagged = box.address.replace("@", "+raw@")
    assert send(edge, [box.address, tagged], RAW)[0] == 250
    (post,) = target.requests
    assert (post.header("content-type") or "").startswith("multipart/form-data; boundary=")
    parts = form_parts(Payload(post.header("content-type") or "", post.body))
    received = RAW + b"\r\n"  # smtplib ends DATA's last line; nothing else may change
    assert parts == [
        ("message", received),
        ("envelope[to]", box.address.encode()),
        ("envelope[recipients][0]", box.address.encode()),
        ("envelope[recipients][1]", tagged.encode()),
        ("envelope[from]", SENDER.encode()),
        ("envelope[helo_domain]", b"client.example"),
        ("envelope[remote_ip]", b"127.0.0.1"),
        ("envelope[spf][result]", b"pass"),
        ("envelope[spf][domain]", SENDER_DOMAIN.encode()),
        ("envelope[tls]", b"false"),
        ("envelope[md5]", hashlib.md5(received, usedforsecurity=False).hexdigest().encode()),
        # Unsigned (no envelope[dkim][...] fields), and sender.example publishes no DMARC record.
        ("envelope[dmarc][result]", b"none"),
        ("envelope[dmarc][domain]", SENDER_DOMAIN.encode()),
        ("envelope[arc][result]", b"none"),  # no ARC-Seal: no chain
        ("envelope[arc][instances]", b"0"),
    ]
