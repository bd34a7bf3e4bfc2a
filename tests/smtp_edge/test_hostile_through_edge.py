"""Hostile messages through the real MX listener: each gets its documented reply (250 with what
could be decoded, or 554 5.6.0 over the parser's caps), and the same edge then still delivers an
ordinary message. The parser's own handling of these inputs is tested in
tests/inbound/test_inbound_hostile.py; here they travel through SMTP, the worker thread and HTTP.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import SENDER, EdgeThread, Mailbox, Target, message

HEAD = b"From: a@sender.example\r\nSubject: hostile\r\n"
TOO_COMPLEX = (554, "5.6.0 Message structure too complex to process")
SMTP_TIMEOUT = 120.0
"""Socket timeout: a hang fails the test instead of stalling the suite."""


def nested(depth: int) -> bytes:
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--" % i for i in reversed(range(depth)))
    return HEAD + opening + b"Content-Type: text/plain\r\n\r\ndeep text" + closing + b"\r\n"


def many_parts(count: int) -> bytes:
    parts = b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" * count
    return HEAD + b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + parts + b"--p--\r\n"


def many_headers(count: int) -> bytes:
    return HEAD + b"".join(b"X-H%d: v\r\n" % i for i in range(count)) + b"\r\nbody\r\n"


UNKNOWN_CHARSET = (
    HEAD
    + b"Content-Type: multipart/alternative; boundary=c\r\n\r\n"
    + b"--c\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nna\xefve caf\xe9\r\n"
    + b'--c\r\nContent-Type: text/html; charset="utf-8\xff"\r\n\r\n<p>\xc3\xa9t\xc3\xa9</p>\r\n'
    + b"--c--\r\n"
)
MISSING_BOUNDARY = HEAD + b"Content-Type: multipart/mixed\r\n\r\n--x\r\nnot really parts\r\n"
MISSING_CLOSE = (
    HEAD
    + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nfirst\r\n--b\r\n"
    + b"Content-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n"
)
INVALID_BASE64 = (
    HEAD
    + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    + b"Content-Type: image/png; name=x.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + b"!!aGVs\xffbG8=garbage===\r\n--b--\r\n"
)
NUL_BYTES = (
    HEAD
    + b'Content-Type: multipart/mixed; boundary="n\x00"\r\n\r\n\x00\x00\r\n--n\x00\r\n'
    + b"Content-Type: text/plain\r\n\r\na\x00b\r\n--n\x00--\r\n"
)
MEGABYTE_HEADER = b"Subject: " + b"h" * 1_000_000 + b"\r\nFrom: a@sender.example\r\n\r\nbody\r\n"
LONG_LINES = HEAD + b"\r\n" + (b"w" * 5000 + b"\r\n") * 3 + b"x" * 200_000 + b"\r\n"


@dataclass(frozen=True)
class Case:
    raw: bytes
    reply: tuple[int, str] | None  # None: delivered (250)
    check: Callable[[dict[str, Any]], bool] = lambda document: True


CASES = {
    "1000-level nesting": Case(
        nested(1000),
        None,
        lambda d: d["plain"] is None and [a["file_name"] for a in d["attachments"]] == ["unparsed-part.eml"],
    ),
    "20000 parts": Case(many_parts(20_000), TOO_COMPLEX),
    "5000 header fields": Case(many_headers(5000), TOO_COMPLEX),
    "unknown charsets": Case(
        UNKNOWN_CHARSET, None, lambda d: d["plain"] == "naïve café" and d["html"] == "<p>été</p>"
    ),
    "missing boundary parameter": Case(
        MISSING_BOUNDARY, None, lambda d: d["plain"] == "--x\nnot really parts\n"
    ),
    "missing close delimiter": Case(
        MISSING_CLOSE,
        None,
        lambda d: d["plain"] == "first" and d["attachments"][0]["file_name"] == "a.pdf",
    ),
    "invalid base64": Case(
        INVALID_BASE64, None, lambda d: d["attachments"][0]["content"].startswith("aGVsbG8")
    ),
    "NUL bytes": Case(NUL_BYTES, None, lambda d: d["plain"] == "a\ufffdb"),
    "1 MB header line": Case(MEGABYTE_HEADER, None, lambda d: d["headers"]["subject"] == "h" * 1_000_000),
    "lines over 1000 bytes": Case(
        LONG_LINES,
        None,
        lambda d: d["plain"] == ("w" * 5000 + "\n") * 3 + "x" * 200_000 + "\n",
    ),
}


def send(edge: EdgeThread, to: str, raw: bytes) -> tuple[int, str]:
    with smtplib.SMTP(
        "127.0.0.1", edge.mx_port, local_hostname="client.example", timeout=SMTP_TIMEOUT
    ) as client:
        try:
            client.sendmail(SENDER, [to], raw)
        except smtplib.SMTPDataError as refused:
            error = refused.smtp_error
            return refused.smtp_code, error.decode() if isinstance(error, bytes) else error
    return 250, ""


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_message_gets_its_documented_reply_and_the_edge_keeps_serving(
    name: str, edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    case = CASES[name]
    box = mailbox("/status/200")
    outcome = send(edge, box.address, case.raw)
    if case.reply is None:
        assert outcome[0] == 250
        (post,) = target.requests
        document = json.loads(post.body)
        assert case.check(document), f"{name}: unexpected payload"
    else:
        assert outcome == case.reply
        assert target.requests == []
    assert send(edge, box.address, message("after " + name)) == (250, "")
    assert json.loads(target.requests[-1].body)["headers"]["subject"] == "after " + name
