"""Every message of the shared corpus, sent with smtplib through the real MX listener to a real
target: each gets a definite reply, and each accepted one arrives as a valid POST in each format.

tests/inbound/test_inbound_corpus.py checks the parser alone; this is the same corpus end to end
(SMTP framing, dot-stuffing, the worker thread, the HTTP client, the target's parser). One edge
and one target serve the whole corpus for each format; each message has a connection of its own,
eight at a time, and a `+tag` of its own so its POST can be told apart.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import smtplib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.formparser import parse_form_data
from werkzeug.test import create_environ

from provider.inbound import Payload
from tests.inbound.samples import CORPUS, corpus_files, corpus_part, form_parts

from .conftest import SENDER, EdgeThread, Mailbox, Request, Target

corpus_part()

NOT_MESSAGES = {".png", ".wav", ".py", ".md"}
"""Files in the corpus that are fixtures of its own projects, not mail (pictures, sound, code)."""

TOP_LEVEL_KEYS = {"headers", "envelope", "plain", "html", "reply_plain", "attachments"}
DEFINITE = {250, 554}
"""Replies a corpus message may get: delivered, or refused as too complex (554 5.6.0)."""

CLIENTS = 8
"""Sessions at once: the edge serves them concurrently, which keeps this test short."""

SMTP_TIMEOUT = 60.0
"""Socket timeout: a hang becomes a failure of this test instead of a stuck suite."""


def corpus_messages() -> list[Path]:
    return [p for p in corpus_files() if p.suffix.lower() not in NOT_MESSAGES]


def as_sent(raw: bytes) -> bytes:
    """The file as an MTA relays it: every CR, LF or CRLF becomes CRLF, and it ends with CRLF.
    (smtplib converts line ends only in str messages; bytes go out as they are, and a bare LF is
    not a line end to the edge.) The target must receive exactly these bytes."""
    fixed = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", raw)
    return fixed if fixed.endswith(b"\r\n") else fixed + b"\r\n"


def deliver(edge: EdgeThread, to: str, raw: bytes) -> int:
    """The SMTP reply code the message got at the end of DATA (250 when delivered)."""
    with smtplib.SMTP(
        "127.0.0.1", edge.mx_port, local_hostname="client.example", timeout=SMTP_TIMEOUT
    ) as client:
        try:
            client.sendmail(SENDER, [to], raw)
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code
    return 250


def envelope_to(post: Request) -> str:
    """Where a POST of any of the three formats says it is for."""
    if post.header("content-type") == "application/json":
        return str(json.loads(post.body)["envelope"]["to"])
    parts = dict(form_parts(Payload(post.header("content-type") or "", post.body)))
    return parts["envelope[to]"].decode()


def parse_form(post: Request) -> tuple[MultiDict[str, str], MultiDict[str, FileStorage]]:
    """The body as a WSGI app (Werkzeug's form parser) sees it."""
    environ = create_environ(
        method="POST",
        input_stream=io.BytesIO(post.body),
        content_type=post.header("content-type"),
        content_length=len(post.body),
    )
    _, form, files = parse_form_data(environ, silent=False)
    return form, files


def check_json(post: Request, to: str, sent: bytes) -> None:
    assert post.header("content-type") == "application/json"
    document = json.loads(post.body)
    assert set(document) == TOP_LEVEL_KEYS
    envelope = document["envelope"]
    assert envelope["to"] == to and envelope["from"] == SENDER
    assert envelope["md5"] == hashlib.md5(sent, usedforsecurity=False).hexdigest()
    assert isinstance(document["headers"], dict)
    for attachment in document["attachments"]:
        content = base64.b64decode(attachment["content"], validate=True)
        assert attachment["size"] == len(content)
        assert attachment["disposition"] in ("attachment", "inline")


def check_multipart(post: Request, to: str, sent: bytes) -> None:
    assert (post.header("content-type") or "").startswith("multipart/form-data; boundary=")
    form, files = parse_form(post)
    assert form["envelope[to]"] == to and form["envelope[from]"] == SENDER
    assert form["envelope[md5]"] == hashlib.md5(sent, usedforsecurity=False).hexdigest()
    assert form["envelope[spf][result]"] == "pass"
    assert set(files) <= {"attachments[]"}
    assert all(upload.filename for upload in files.getlist("attachments[]"))


def check_raw(post: Request, to: str, sent: bytes) -> None:
    parts = dict(form_parts(Payload(post.header("content-type") or "", post.body)))
    assert parts["message"] == sent
    assert parts["envelope[to]"] == to.encode()


CHECKS: dict[str, Callable[[Request, str, bytes], None]] = {
    "json": check_json,
    "multipart": check_multipart,
    "raw": check_raw,
}


def tagged(box: Mailbox, index: int) -> str:
    """A `+tag` per message: the POST's envelope `to` says which message it carries."""
    return box.address.replace("@", f"+m{index}@")


@pytest.mark.parametrize("fmt", sorted(CHECKS))
def test_every_corpus_message_gets_a_definite_reply_and_a_valid_post(
    fmt: str, edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200", fmt=fmt, plan="corp2m")  # a quota above the corpus size
    names = [str(p.relative_to(CORPUS)) for p in corpus_messages()]
    sent = [as_sent((CORPUS / name).read_bytes()) for name in names]
    with ThreadPoolExecutor(CLIENTS) as clients:
        codes = list(clients.map(lambda i: deliver(edge, tagged(box, i), sent[i]), range(len(names))))
    posts: dict[str, list[Request]] = {}
    for post in target.requests:
        posts.setdefault(envelope_to(post), []).append(post)
    problems: dict[str, str] = {}
    for index, (name, code) in enumerate(zip(names, codes, strict=True)):
        arrived = posts.get(tagged(box, index), [])
        if code not in DEFINITE:
            problems[name] = f"reply {code}"
        elif len(arrived) != (1 if code == 250 else 0):
            problems[name] = f"reply {code} with {len(arrived)} POSTs"
        elif arrived:
            try:
                CHECKS[fmt](arrived[0], tagged(box, index), sent[index])
            except (AssertionError, ValueError, KeyError) as error:
                problems[name] = f"{type(error).__name__}: {error}"[:300]
    assert problems == {}
    assert len(names) > 200
    assert codes.count(250) > 200, "nearly every real message is deliverable"
