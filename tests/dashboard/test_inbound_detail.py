"""An inbound message's detail: the message the store kept (from a real SeaweedFS), and "send again"."""

from __future__ import annotations

import html
import json
import uuid

import pytest
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from dev.services import S3Server
from provider.crypto import box_for
from provider.jobs import RESEND_JOB
from provider.models import Address, AppLogLine, InboundMessage, Resource
from provider.models.inbound_message import RESEND_QUEUED
from provider.services.history import Delivery
from provider.services.resend import NOT_KEPT
from provider.services.stored_messages import PREVIEW_BYTES
from provider.services.stores import StoreConfig, s3_client, write_config
from provider.settings import Settings
from provider.tasks import DEFAULT_QUEUE, redis_connection
from tests.conftest import STORE_BUCKET
from tests.domain_rows import record_delivery
from tests.smtp_edge.test_stores import read_back

from .conftest import Shop, csrf_token, sign_in

KEPT = (
    b"From: Ann <ann@sender.example>\r\nTo: box@cloudmailin.test\r\nSubject: Order 1001\r\n"
    b"Message-ID: <kept@sender.example>\r\n\r\n" + b"Line of the order body.\r\n" * 4000
)  # about 100 KB: more than the page shows


def store_for(db_session: Session, settings: Settings, resource_id: str, server: S3Server,
              endpoint_url: str | None = None) -> tuple[Address, StoreConfig]:
    address = db_session.scalars(select(Address).where(Address.resource_id == resource_id)).one()
    config = StoreConfig(
        STORE_BUCKET, f"t-{uuid.uuid4().hex[:12]}", "us-east-1", endpoint_url or server.endpoint_url,
        server.access_key_id, server.secret_access_key, attachments=True, messages=True,
    )
    write_config(settings, address, config)
    db_session.commit()
    return address, config


def kept_message(db_session: Session, resource_id: str, address: Address, key: str | None) -> int:
    row = record_delivery(db_session, Delivery(
        resource_id=resource_id, address_id=address.id, envelope_from="ann@sender.example",
        envelope_to="box@cloudmailin.test", recipients=["box@cloudmailin.test"], status="201",
        smtp_reply="250 2.0.0 ok", subject="Order 1001", size=len(KEPT), http_status=201,
        target_url="https://app.example/mail", target_ms=12, stored_message_key=key,
        helo_domain="client.example",
    ))
    db_session.commit()
    return row.id


@pytest.fixture
def stored(db_session: Session, settings: Settings, shop: Shop, s3_server: S3Server) -> tuple[int, str]:
    """A message of the shop kept in SeaweedFS: its history id and object key."""
    address, config = store_for(db_session, settings, shop.account.resource_id, s3_server)
    key = f"{config.prefix}/2026_12_01_10_00_00_{uuid.uuid4().hex}.eml"
    s3_client(config, 5).put_object(Bucket=STORE_BUCKET, Key=key, Body=KEPT)
    return kept_message(db_session, shop.account.resource_id, address, key), key


def resends(db_session: Session, row_id: int) -> list[InboundMessage]:
    return list(db_session.scalars(select(InboundMessage).where(InboundMessage.resent_from_id == row_id)))


def page_of(client: FlaskClient, row_id: int) -> str:
    response = client.get(f"/dashboard/inbound/{row_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return html.unescape(response.get_data(as_text=True))


def test_detail_shows_the_kept_message_and_downloads_it_whole(
    signed_in: FlaskClient, stored: tuple[int, str]
) -> None:
    row_id, key = stored
    page = page_of(signed_in, row_id)
    assert key in page and f"{len(KEPT):,} bytes" in page
    assert f"The first {PREVIEW_BYTES:,} bytes are shown." in page
    assert "Subject: Order 1001" in page and "Line of the order body." in page

    download = signed_in.get(f"/dashboard/inbound/{row_id}/message")

    assert download.status_code == 200
    assert download.mimetype == "message/rfc822"
    assert download.headers["Content-Disposition"] == f'attachment; filename="{key.rpartition("/")[2]}"'
    assert download.get_data() == KEPT


def test_a_store_out_of_reach_is_a_note_on_the_page_and_the_download_comes_back_to_it(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop, s3_server: S3Server
) -> None:
    address, _ = store_for(db_session, settings, shop.account.resource_id, s3_server,
                           endpoint_url="http://127.0.0.1:9")  # discard port: nothing listens
    row_id = kept_message(db_session, shop.account.resource_id, address, "gone/message.eml")

    page = page_of(signed_in, row_id)
    assert 'id="store-note"' in page and "The store could not be reached just now" in page

    download = signed_in.get(f"/dashboard/inbound/{row_id}/message")
    assert download.status_code == 303 and download.location.endswith(f"/dashboard/inbound/{row_id}")
    assert "The store could not be reached just now" in page_of(signed_in, row_id)


def test_an_object_the_store_no_longer_has_is_a_note_with_the_store_s_words(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop, s3_server: S3Server
) -> None:
    address, config = store_for(db_session, settings, shop.account.resource_id, s3_server)
    row_id = kept_message(db_session, shop.account.resource_id, address, f"{config.prefix}/none.eml")
    page = page_of(signed_in, row_id)
    assert "The store did not give the kept message back (NoSuchKey" in page


def test_a_message_not_kept_says_how_to_keep_them_and_has_no_download(
    signed_in: FlaskClient, shop: Shop
) -> None:
    page = page_of(signed_in, shop.inbound_id)
    assert "This message was not kept" in page and "download-message" not in page
    assert signed_in.get(f"/dashboard/inbound/{shop.inbound_id}/message").status_code == 404


def test_send_again_queues_a_resend_shown_queued_on_the_page_with_an_app_log_line(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop, stored: tuple[int, str]
) -> None:
    row_id, _ = stored
    resource = db_session.get(Resource, shop.account.resource_id)
    assert resource is not None
    resource.log_input_url_enc = box_for(settings).encrypt("https://t:t@127.0.0.1:9/logs")
    db_session.commit()
    token = csrf_token(page_of(signed_in, row_id))

    answer = signed_in.post(f"/dashboard/inbound/{row_id}/resend", data={"csrf_token": token})

    assert answer.status_code == 303 and answer.location.endswith(f"/dashboard/inbound/{row_id}")
    db_session.expire_all()
    (queued,) = resends(db_session, row_id)
    assert queued.status == RESEND_QUEUED and queued.resource_id == shop.account.resource_id
    jobs = Queue(DEFAULT_QUEUE, connection=redis_connection(settings.redis_url)).jobs
    assert [(job.func_name, job.args) for job in jobs] == [(RESEND_JOB, (queued.id,))]
    lines = db_session.scalars(select(AppLogLine.message).where(
        AppLogLine.resource_id == shop.account.resource_id)).all()
    assert f"cloudmailin: re-send of inbound message {row_id} queued from the dashboard" in lines
    page = page_of(signed_in, row_id)
    assert f"Re-send queued as message {queued.id}" in page
    assert 'id="resends"' in page and f"/dashboard/inbound/{queued.id}" in page and ">queued<" in page
    assert f'A re-send of <a href="/dashboard/inbound/{row_id}">message {row_id}</a>' in page_of(
        signed_in, queued.id)


def test_send_again_without_the_csrf_token_is_refused_and_queues_nothing(
    signed_in: FlaskClient, db_session: Session, stored: tuple[int, str]
) -> None:
    row_id, _ = stored
    assert signed_in.post(f"/dashboard/inbound/{row_id}/resend").status_code == 400
    assert resends(db_session, row_id) == []


def test_send_again_of_a_message_not_kept_shows_why(
    signed_in: FlaskClient, db_session: Session, shop: Shop
) -> None:
    token = csrf_token(page_of(signed_in, shop.inbound_id))
    answer = signed_in.post(f"/dashboard/inbound/{shop.inbound_id}/resend", data={"csrf_token": token})
    assert answer.status_code == 303
    assert NOT_KEPT in page_of(signed_in, shop.inbound_id)
    queued = db_session.scalars(select(InboundMessage).where(InboundMessage.status == RESEND_QUEUED))
    assert queued.all() == []


def test_another_resource_s_message_is_not_found_for_send_again_and_download(
    client: FlaskClient, settings: Settings, other_shop: Shop, stored: tuple[int, str]
) -> None:
    row_id, _ = stored
    sign_in(client, settings, other_shop.account.resource_id)
    token = csrf_token(page_of(client, other_shop.inbound_id))
    assert client.post(f"/dashboard/inbound/{row_id}/resend", data={"csrf_token": token}).status_code == 404
    assert client.get(f"/dashboard/inbound/{row_id}/message").status_code == 404
    assert client.get(f"/dashboard/inbound/{row_id}").status_code == 404


def test_the_archive_names_each_kept_message_so_it_reads_back_from_the_store(
    signed_in: FlaskClient, shop: Shop, stored: tuple[int, str], s3_server: S3Server
) -> None:
    row_id, key = stored
    downloaded = signed_in.get("/dashboard/archive").get_data(as_text=True)
    lines = [json.loads(line) for line in downloaded.splitlines()]
    records = {line["id"]: line for line in lines if line["type"] == "inbound"}

    assert records[shop.inbound_id]["stored_message"] is None
    kept = records[row_id]["stored_message"]
    assert kept == {"key": key, "url": f"{s3_server.endpoint_url}/{STORE_BUCKET}/{key}"}
    assert read_back(s3_server, kept["url"]) == KEPT
