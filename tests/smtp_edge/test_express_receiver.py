"""A receiving app written the way CloudMailin's documentation shows (Express, `express.json`,
`mail.envelope.to`, `mail.plain`, `mail.attachments[0].content`) gets the fields it reads.

The app is receivers/express_receiver.js, run as a real node process on 127.0.0.1 with Express
from tests/npm; it checks Basic auth from the target URL and the X-CloudMailin-Signature, and
writes what it read to a file this test compares with what was sent.
"""

from __future__ import annotations

import base64
import json
import os
import select
import smtplib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from provider.models import InboundMessage
from tests.cli import NPM_DIR, ensure_npm_tools

from .conftest import SENDER, EdgeThread, Mailbox

RECEIVER = Path(__file__).resolve().parent / "receivers" / "express_receiver.js"
USER, PASSWORD = "cloudmailin", "p@ss:word"
STARTUP_TIMEOUT = 30.0


@dataclass
class Receiver:
    port: int
    out: Path
    secret_file: Path

    def url(self) -> str:
        return f"http://{USER}:p%40ss%3Aword@127.0.0.1:{self.port}/incoming"

    def read(self) -> dict[str, object]:
        document: dict[str, object] = json.loads(self.out.read_text())
        return document


@pytest.fixture
def express_receiver(tmp_path: Path) -> Iterator[Receiver]:
    """The node app, listening; stopped with SIGTERM after the test."""
    ensure_npm_tools()
    receiver = Receiver(0, tmp_path / "read.json", tmp_path / "secret")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NODE_PATH": str(NPM_DIR / "node_modules"),
        "RECEIVER_OUT": str(receiver.out),
        "RECEIVER_USER": USER,
        "RECEIVER_PASSWORD": PASSWORD,
        "RECEIVER_SECRET_FILE": str(receiver.secret_file),
    }
    process = subprocess.Popen(["node", str(RECEIVER)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT)
        assert ready, "the Express receiver did not start"
        line = process.stdout.readline()
        assert line.startswith("listening on "), f"unexpected receiver output {line!r}"
        receiver.port = int(line.split()[-1])
        yield receiver
    finally:
        process.terminate()
        process.wait(10)


ATTACHMENT = "Order 42\nqty: 3\nnote: café ☕\n".encode()
MESSAGE = (
    (
        f"From: Someone <{SENDER}>\r\nTo: orders@example.com\r\nSubject: Order with notes\r\n"
        "Message-ID: <express-1@sender.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        "--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Please ship order 42.\r\n\r\nOn Mon, 1 Jan 2024, Shop <shop@example.com> wrote:\r\n"
        "> Your cart is waiting.\r\n"
        "--outer\r\nContent-Type: text/plain; charset=utf-8; name=notes.txt\r\n"
        "Content-Disposition: attachment; filename=notes.txt\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    + base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n")
    + b"--outer--\r\n"
)


def test_an_express_handler_as_documented_reads_the_fields_it_expects(
    edge: EdgeThread,
    mailbox: Callable[..., Mailbox],
    express_receiver: Receiver,
    db_session: Session,
) -> None:
    box = mailbox(target_url=express_receiver.url())
    express_receiver.secret_file.write_text(box.signing_secret)
    tagged = box.address.replace("@", "+orders@")
    with smtplib.SMTP("127.0.0.1", edge.mx_port, local_hostname="client.example") as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(tagged)[0] == 250
        code, reply = client.data(MESSAGE)
    assert (code, reply.decode()) == (250, "2.0.0 Message accepted by the target (HTTP 201)")
    assert express_receiver.read() == {
        "to": tagged,
        "from": SENDER,
        "recipients": [tagged],
        "spf": "pass",
        "subject": "Order with notes",
        "plain": (
            "Please ship order 42.\n\nOn Mon, 1 Jan 2024, Shop <shop@example.com> wrote:\n"
            "> Your cart is waiting."
        ),
        "html": None,
        "reply_plain": "Please ship order 42.",
        "attachment_count": 1,
        "file_name": "notes.txt",
        "content_type": "text/plain",
        "size": len(ATTACHMENT),
        "content": ATTACHMENT.decode(),
        "signature_valid": True,
        "user_agent": "CloudMailin Server",
    }
    db_session.expire_all()
    (row,) = db_session.scalars(sql_select(InboundMessage))
    assert (row.status, row.envelope_to) == ("201", tagged)
