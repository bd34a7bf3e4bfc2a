"""The attachment store and the message store, end to end: real SMTP in, real SeaweedFS, real target."""

from __future__ import annotations

import base64
import email.policy
import json
import os
import re
import secrets
import signal
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import boto3
import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from dev.services import S3Server, start_seaweedfs
from provider.models import Address
from provider.services.stores import StoreConfig, write_config
from provider.settings import Settings
from tests.conftest import STORE_BUCKET

from .conftest import SENDER, EdgeThread, Mailbox, Request, Target, history, send, smtp_error
from .test_address_changes import _api

PDF = os.urandom(40_000)  # binary, so a byte lost or re-encoded anywhere shows
NOTES = "Notes\r\nline two, ünïcode\r\n".encode()


def with_attachments() -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = "x@example"
    msg["Subject"] = "Invoice"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@sender.example>"
    msg.set_content("See the invoice attached.\n")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice 42.pdf")
    msg.add_attachment(NOTES, maintype="text", subtype="plain", filename="notes.txt")
    return msg.as_bytes(policy=email.policy.SMTP)


def s3_client(s3: S3Server) -> Any:
    return boto3.client(
        "s3", endpoint_url=s3.endpoint_url, region_name="us-east-1",
        aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key,
    )


def read_back(s3: S3Server, url: str) -> bytes:
    """The object a payload's URL points to, read with boto3."""
    assert url.startswith(f"{s3.endpoint_url}/{STORE_BUCKET}/"), url
    key = url.removeprefix(f"{s3.endpoint_url}/{STORE_BUCKET}/")
    body: bytes = s3_client(s3).get_object(Bucket=STORE_BUCKET, Key=key)["Body"].read()
    return body


def form_fields(post: Request) -> list[tuple[str, bytes]]:
    """Every field of a multipart/form-data body in order (repeated names kept)."""
    head = f"Content-Type: {post.header('content-type')}\r\n\r\n".encode()
    parsed = BytesParser(policy=email.policy.HTTP).parsebytes(head + post.body)
    fields = []
    for part in parsed.iter_parts():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        fields.append((str(part.get_param("name", header="content-disposition")), payload))
    return fields


@pytest.fixture
def stored_mailbox(
    mailbox: Callable[..., Mailbox], db_session: Session, settings: Settings, s3_server: S3Server
) -> Callable[..., tuple[Mailbox, str]]:
    """A starter-plan mailbox whose address stores into SeaweedFS under a prefix of its own."""

    def make(
        path: str = "/status/201", *, fmt: str = "json", messages: bool = True, s3: S3Server | None = None
    ) -> tuple[Mailbox, str]:
        server = s3 or s3_server
        box = mailbox(path, fmt=fmt, plan="starter")
        prefix = f"t-{uuid.uuid4().hex[:12]}/in"
        address = db_session.get(Address, box.address_id)
        assert address is not None
        config = StoreConfig(
            STORE_BUCKET, prefix, "us-east-1", server.endpoint_url,
            server.access_key_id, server.secret_access_key, attachments=True, messages=messages,
        )
        write_config(settings, address, config)
        db_session.commit()
        return box, prefix

    return make


def test_json_carries_attachment_urls_and_the_objects_are_the_attachments_byte_for_byte(
    edge: EdgeThread, target: Target, stored_mailbox: Callable[..., tuple[Mailbox, str]], s3_server: S3Server
) -> None:
    box, prefix = stored_mailbox()
    raw = with_attachments()

    assert send(edge, [box.address], raw) == {}

    (post,) = target.requests
    payload = json.loads(post.body)
    pdf, notes = payload["attachments"]
    assert "content" not in pdf and "content" not in notes
    assert (pdf["file_name"], pdf["content_type"]) == ("invoice 42.pdf", "application/pdf")
    assert pdf["size"] == len(PDF)
    folder = re.escape(f"{s3_server.endpoint_url}/{STORE_BUCKET}/{prefix}/")
    assert re.fullmatch(folder + r"[0-9a-f]{20}\.pdf", pdf["url"])
    assert notes["url"].endswith(".txt")
    assert read_back(s3_server, pdf["url"]) == PDF
    assert read_back(s3_server, notes["url"]) == NOTES
    # The message store: the raw message as received, named by its time and MD5.
    store_url = payload["envelope"]["store_url"]
    assert re.fullmatch(
        folder + r"\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d_" + payload["envelope"]["md5"] + r"\.eml",
        store_url,
    )
    assert read_back(s3_server, store_url) == raw


def test_multipart_carries_bracket_fields_with_the_urls_and_no_files(
    edge: EdgeThread, target: Target, stored_mailbox: Callable[..., tuple[Mailbox, str]], s3_server: S3Server
) -> None:
    box, _ = stored_mailbox(fmt="multipart", messages=False)

    send(edge, [box.address], with_attachments())

    (post,) = target.requests
    fields = form_fields(post)
    attachment_fields = [(name, value) for name, value in fields if name.startswith("attachments[]")]
    urls = [value.decode() for name, value in attachment_fields if name == "attachments[][url]"]
    names = [value for name, value in attachment_fields if name == "attachments[][file_name]"]
    assert names == [b"invoice 42.pdf", b"notes.txt"]
    assert [read_back(s3_server, url) for url in urls] == [PDF, NOTES]
    assert ("attachments[][size]", str(len(PDF)).encode()) in attachment_fields
    assert not [name for name, _ in attachment_fields if name == "attachments[]"]  # no file parts
    assert "envelope[store_url]" not in dict(fields)  # the message store is off


def test_raw_format_strips_nothing_and_points_to_the_stored_message(
    edge: EdgeThread, target: Target, stored_mailbox: Callable[..., tuple[Mailbox, str]], s3_server: S3Server
) -> None:
    box, _ = stored_mailbox(fmt="raw")
    raw = with_attachments()

    send(edge, [box.address], raw)

    (post,) = target.requests
    fields = dict(form_fields(post))
    assert fields["message"] == raw  # attachments and all, byte for byte
    assert read_back(s3_server, fields["envelope[store_url]"].decode()) == raw


def test_uploads_are_kept_when_the_target_rejects(
    edge: EdgeThread, target: Target, stored_mailbox: Callable[..., tuple[Mailbox, str]], s3_server: S3Server
) -> None:
    box, prefix = stored_mailbox("/status/422")

    code, _ = smtp_error(edge, [box.address], with_attachments())

    assert code == 550
    listing = s3_client(s3_server).list_objects_v2(Bucket=STORE_BUCKET, Prefix=prefix + "/")
    assert len(listing["Contents"]) == 3  # two attachments and the message


@pytest.fixture
def own_s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A SeaweedFS of this test's own, to kill."""
    server = start_seaweedfs(
        tmp_path / "seaweedfs", "kill-key-id", secrets.token_hex(16), buckets=(STORE_BUCKET,)
    )
    try:
        yield server
    finally:
        server.stop()


def test_a_store_killed_mid_flow_defers_with_450_records_store_error_and_posts_nothing(
    edge: EdgeThread,
    target: Target,
    stored_mailbox: Callable[..., tuple[Mailbox, str]],
    own_s3_server: S3Server,
    db_session: Session,
) -> None:
    box, _ = stored_mailbox(s3=own_s3_server)
    assert send(edge, [box.address], with_attachments()) == {}  # the store works...
    own_s3_server.process.kill()  # ...and then is gone (kill -9)
    own_s3_server.process.wait(10)

    code, text = smtp_error(edge, [box.address], with_attachments())

    assert code == 450 and "store" in text
    assert len(target.requests) == 1  # only the first message was POSTed
    first, second = history(db_session)
    assert first.status == "201"
    assert second.status == "store_error"
    assert second.smtp_reply.startswith("450 4.3.0")
    assert second.response_body and "Could not connect" in second.response_body


def test_a_wrong_secret_at_delivery_time_is_store_error_with_the_stores_code(
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    db_session: Session,
    settings: Settings,
    s3_server: S3Server,
) -> None:
    box = mailbox(plan="premium")
    address = db_session.get(Address, box.address_id)
    assert address is not None
    write_config(settings, address, StoreConfig(
        STORE_BUCKET, "", "us-east-1", s3_server.endpoint_url, s3_server.access_key_id, "revoked-secret",
    ))
    db_session.commit()

    code, _ = smtp_error(edge, [box.address], with_attachments())

    assert code == 450 and target.requests == []
    (row,) = history(db_session)
    assert row.status == "store_error"
    assert row.response_body and row.response_body.startswith("SignatureDoesNotMatch")


def test_a_plan_without_stores_posts_contents_inline_even_with_a_store_saved(
    edge: EdgeThread,
    target: Target,
    stored_mailbox: Callable[..., tuple[Mailbox, str]],
    db_session: Session,
) -> None:
    from provider.models import Resource

    box, _ = stored_mailbox()
    resource = db_session.get(Resource, box.resource_id)
    assert resource is not None
    resource.plan = "free"  # a downgrade after the store was saved
    db_session.commit()

    send(edge, [box.address], with_attachments())

    (post,) = target.requests
    payload = json.loads(post.body)
    assert all("content" in item and "url" not in item for item in payload["attachments"])
    assert "store_url" not in payload["envelope"]


def test_a_store_that_stops_answering_defers_after_store_timeout_with_store_error(
    edge: EdgeThread,
    target: Target,
    stored_mailbox: Callable[..., tuple[Mailbox, str]],
    own_s3_server: S3Server,
    db_session: Session,
) -> None:
    edge.restart(store_timeout=1.0)
    box, _ = stored_mailbox(s3=own_s3_server)
    own_s3_server.process.send_signal(signal.SIGSTOP)  # connections are accepted, never answered
    try:
        code, _ = smtp_error(edge, [box.address], with_attachments())
    finally:
        own_s3_server.process.send_signal(signal.SIGCONT)

    assert code == 450 and target.requests == []
    (row,) = history(db_session)
    assert row.status == "store_error"
    assert row.response_body and "timeout" in row.response_body.lower()


def test_a_store_saved_through_the_api_reaches_the_running_edge_and_removing_it_inlines_again(
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    client: FlaskClient,
    db_session: Session,
    settings: Settings,
    s3_server: S3Server,
) -> None:
    box = mailbox(plan="starter")
    api = _api(client, edge, box, db_session, settings)
    send(edge, [box.address], with_attachments())
    assert api.cached()  # only the change notice can make the edge read the store
    prefix = f"t-{uuid.uuid4().hex[:12]}"

    api.patch(store={
        "bucket": STORE_BUCKET, "prefix": prefix, "endpoint_url": s3_server.endpoint_url,
        "access_key_id": s3_server.access_key_id, "secret_access_key": s3_server.secret_access_key,
    })
    send(edge, [box.address], with_attachments())
    api.patch(store=None)
    send(edge, [box.address], with_attachments())

    inline, stored, inline_again = (json.loads(post.body)["attachments"] for post in target.requests)
    assert [base64.b64decode(item["content"]) for item in inline] == [PDF, NOTES]
    assert [read_back(s3_server, item["url"]) for item in stored] == [PDF, NOTES]
    folder = f"{s3_server.endpoint_url}/{STORE_BUCKET}/{prefix}/"
    assert all(item["url"].startswith(folder) for item in stored)
    assert inline_again == inline
