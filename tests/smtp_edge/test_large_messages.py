"""Large messages through the real MX listener: a 25 MB attachment arrives intact, and ten 25 MB
messages at once do not keep small messages on other sessions from being answered and delivered.

How fast is the benchmark's business (bench/inbound.py); these tests assert only outcomes. A
client hanging up mid-DATA on a small message is tested in test_session.py; here one hangs up
halfway through a 25 MB message while the others stream, which exercises the large-message path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import smtplib
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session

from provider.plans import MB, PLANS

from .conftest import SENDER, Conversation, EdgeThread, Mailbox, Request, Target, history, message

SMTP_TIMEOUT = 300.0
"""Socket timeout: generous for a loaded 2-core machine; only a real hang reaches it."""


def with_attachment(subject: str, content: bytes, file_name: str = "big.bin") -> bytes:
    encoded = base64.encodebytes(content).replace(b"\n", b"\r\n")
    return (
        (
            f"From: Someone <{SENDER}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            f"--b\r\nContent-Type: application/octet-stream; name={file_name}\r\n"
            "Content-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + encoded
        + b"--b--\r\n"
    )


def attachment_digest(post: Request) -> tuple[str, str, int]:
    """(subject, sha256 of the decoded attachment, its declared size) as the target reads them."""
    document = json.loads(post.body)
    (attachment,) = document["attachments"]
    content = base64.b64decode(attachment["content"], validate=True)
    return (
        document["headers"]["subject"],
        hashlib.sha256(content).hexdigest(),
        attachment["size"],
    )


def test_a_25_mb_attachment_arrives_intact(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    # Base64 makes a 25 MB attachment a 34 MB message: only corp2m's 40 MB limit takes it.
    box = mailbox("/status/200", plan="corp2m")
    content = os.urandom(25 * MB)
    raw = with_attachment("one big attachment", content)
    assert PLANS["premium"].max_message_bytes < len(raw) <= PLANS["corp2m"].max_message_bytes
    with smtplib.SMTP("127.0.0.1", edge.mx_port, timeout=SMTP_TIMEOUT) as client:
        assert client.sendmail(SENDER, [box.address], raw) == {}
    (post,) = target.requests
    assert attachment_digest(post) == (
        "one big attachment",
        hashlib.sha256(content).hexdigest(),
        25 * MB,
    )
    (row,) = history(db_session)
    assert (row.status, row.size) == ("200", len(raw))


def test_ten_25_mb_messages_at_once_leave_small_messages_answered_and_delivered(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    big_box = mailbox("/status/200", plan="starter")
    small_box = mailbox("/status/201")
    content = os.urandom(18 * MB)  # base64 makes it a message just under starter's 25 MB
    digest = hashlib.sha256(content).hexdigest()
    bigs = [with_attachment(f"big {i}", content) for i in range(10)]
    assert not any(b"\r\n." in raw for raw in bigs)  # sent as is: no line needs dot-stuffing
    assert all(24 * MB < len(raw) <= PLANS["starter"].max_message_bytes for raw in bigs)
    half = len(bigs[0]) // 2

    sessions = [Conversation(edge.mx_port) for _ in range(11)]
    for smtp in sessions:
        smtp.sock.settimeout(SMTP_TIMEOUT)
        smtp.command("EHLO client.example")
        assert smtp.command(f"MAIL FROM:<{SENDER}>") == ["250 2.1.0 OK"]
        assert smtp.command(f"RCPT TO:<{big_box.address}>") == ["250 2.1.5 OK"]
        assert smtp.command("DATA")[0].startswith("354")
    *streaming, quitter = sessions
    for smtp, raw in zip(streaming, bigs, strict=True):
        smtp.send(raw[:half])
    quitter.send(bigs[0][:half])
    quitter.close()  # hangs up mid-DATA, halfway through its 25 MB

    def small(subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", edge.mx_port, timeout=SMTP_TIMEOUT) as client:
            assert client.sendmail(SENDER, [small_box.address], message(subject)) == {}

    # Ten sessions are mid-DATA with 12 MB each: small messages are answered meanwhile ...
    small("small while ten stream")
    replies: list[list[str]] = [[] for _ in streaming]

    def finish(index: int) -> None:
        streaming[index].send(bigs[index][half:] + b".\r\n")
        replies[index] = streaming[index].reply()

    finishing = [threading.Thread(target=finish, args=(i,)) for i in range(len(streaming))]
    for thread in finishing:
        thread.start()
    # ... and while the ten are finishing, parsed and posted.
    for i in range(3):
        small(f"small while ten finish {i}")
    for thread in finishing:
        thread.join(SMTP_TIMEOUT)
    for smtp in streaming:
        smtp.close()

    assert replies == [["250 2.0.0 Message accepted by the target (HTTP 200)"]] * 10
    delivered = sorted(attachment_digest(post) for post in target.posts_to("/status/200"))
    assert delivered == sorted((f"big {i}", digest, 18 * MB) for i in range(10))
    small_subjects = {json.loads(post.body)["headers"]["subject"] for post in target.posts_to("/status/201")}
    assert small_subjects == {"small while ten stream"} | {f"small while ten finish {i}" for i in range(3)}
    rows = history(db_session)
    assert sorted(row.subject or "" for row in rows if row.status == "200") == sorted(
        f"big {i}" for i in range(10)
    )
    assert len(rows) == 14, "the session that hung up mid-DATA left no record"
