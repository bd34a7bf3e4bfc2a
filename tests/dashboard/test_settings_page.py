"""The Settings page: each form saves through the addresses API's services, shows its refusal
beside the field, needs the CSRF token and 404s another resource's address; the test message
reaches a real HTTP target on 127.0.0.1, signed as the edge signs."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import socket
import time
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dev.services import S3Server
from provider.crypto import SecretBox
from provider.inbound import verify_signature
from provider.models import Address, AppLogLine, Resource
from provider.services.target_test import send_test_message
from provider.settings import Settings
from tests.conftest import STORE_BUCKET

from ..smtp_edge.conftest import Target
from .conftest import Shop, csrf_token, new_shop, sign_in

PAGE = "/dashboard/settings"


@pytest.fixture
def shop(db_session: Session, settings: Settings) -> Shop:
    """The conftest's shop, with a log drain, so its app log lines are kept."""
    made = new_shop(db_session, settings)
    resource = db_session.get(Resource, made.account.resource_id)
    assert resource is not None
    resource.log_input_url_enc = SecretBox(settings.encryption_key).encrypt("https://t:t@127.0.0.1:9/logs")
    db_session.commit()
    return made


def address_of(db_session: Session, shop: Shop) -> Address:
    db_session.expire_all()
    return db_session.scalars(select(Address).where(Address.resource_id == shop.account.resource_id)).one()


def set_target(db_session: Session, shop: Shop, url: str, fmt: str = "json") -> Address:
    address = address_of(db_session, shop)
    address.target_url, address.format = url, fmt
    db_session.commit()
    return address


def log_lines(db_session: Session, shop: Shop) -> list[str]:
    db_session.expire_all()
    return list(db_session.scalars(select(AppLogLine.message).where(
        AppLogLine.resource_id == shop.account.resource_id).order_by(AppLogLine.id)))


def page_text(client: FlaskClient) -> str:
    response = client.get(PAGE)
    assert response.status_code == 200, response.get_data(as_text=True)
    return html.unescape(response.get_data(as_text=True))


def post(client: FlaskClient, path: str, data: dict[str, str] | None = None, *, htmx: bool = False,
         csrf: bool = True) -> tuple[int, str]:
    fields = dict(data or {})
    if csrf:
        fields["csrf_token"] = csrf_token(client.get(PAGE).get_data(as_text=True))
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.post(path, data=fields, headers=headers)
    return response.status_code, html.unescape(response.get_data(as_text=True))


def field_error(page: str, field_id: str) -> str:
    """The error shown under the field: the input is marked invalid and points at its <small>."""
    tag = re.search(rf'<(?:input|select)[^>]*id="{field_id}"[^>]*>', page)
    assert tag is not None, f"no field {field_id}"
    assert 'aria-invalid="true"' in tag.group(0) and f'aria-describedby="{field_id}-error"' in tag.group(0)
    small = re.search(rf'<small id="{field_id}-error"[^>]*>(.*?)</small>', page, re.S)
    assert small is not None
    return small.group(1).strip()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the page and its target form ----------------------------------------------------------------


def test_the_page_shows_the_address_with_its_target_s_password_masked(
    signed_in: FlaskClient, db_session: Session, shop: Shop, settings: Settings
) -> None:
    address = set_target(db_session, shop, "https://user:hunter2@app.example/mail", "multipart")
    page = page_text(signed_in)
    assert f"{address.local_id}@{settings.inbound_domain}" in page
    assert 'value="https://user:•••@app.example/mail"' in page and "hunter2" not in page
    assert re.search(r'<option value="multipart"\s+selected>', page)
    assert re.search(r'href="/dashboard/settings"\s+aria-current="page">Settings<', page)
    secret = SecretBox(settings.encryption_key).decrypt(address.signing_secret_enc)
    assert secret not in page  # masked until revealed
    assert "<script>" not in page and " style=" not in page  # the CSP allows neither


def test_saving_target_format_and_sizes_changes_the_address_and_writes_a_log_line(
    signed_in: FlaskClient, db_session: Session, shop: Shop
) -> None:
    address = address_of(db_session, shop)
    status, _ = post(signed_in, f"{PAGE}/{address.id}/delivery",
                     {"target": "https://app.example/new", "format": "raw_json", "size_as_string": "on"})
    assert status == 303
    saved = address_of(db_session, shop)
    assert (saved.target_url, saved.format) == ("https://app.example/new", "raw_json")
    assert saved.size_as_string is True
    assert log_lines(db_session, shop) == [
        f"cloudmailin: address {address.local_id} changed target format=raw_json size_as_string=true"
    ]
    assert "Saved the delivery settings" in page_text(signed_in)


def test_sending_the_masked_target_back_keeps_its_password(
    signed_in: FlaskClient, db_session: Session, shop: Shop
) -> None:
    address = set_target(db_session, shop, "https://user:hunter2@app.example/mail")
    status, _ = post(signed_in, f"{PAGE}/{address.id}/delivery",
                     {"target": "https://user:•••@app.example/mail", "format": "multipart"})
    assert status == 303
    saved = address_of(db_session, shop)
    assert (saved.target_url, saved.format) == ("https://user:hunter2@app.example/mail", "multipart")


@pytest.mark.parametrize(("sent", "field", "error"), [
    ({"target": "ftp://app.example/x", "format": "json"}, "target",
     "The target must be an absolute http:// or https:// URL."),
    ({"target": "https://app.example/mail", "format": "xml"}, "format",
     "Unknown format 'xml'; choose json, multipart, raw or raw_json."),
])
def test_a_setting_the_api_refuses_is_shown_beside_its_field_with_the_api_s_words(
    signed_in: FlaskClient, db_session: Session, shop: Shop, sent: dict[str, str], field: str, error: str
) -> None:
    address = address_of(db_session, shop)
    status, page = post(signed_in, f"{PAGE}/{address.id}/delivery", sent)
    assert status == 422
    assert field_error(page, f"delivery-{address.id}-{field}") == error
    if field == "target":
        assert 'value="ftp://app.example/x"' in page  # what was typed comes back
    saved = address_of(db_session, shop)
    assert (saved.target_url, saved.format) == ("https://app.example/mail", "json")
    assert log_lines(db_session, shop) == []


def action_paths(address_id: int) -> list[str]:
    return [f"{PAGE}/{address_id}/{rest}"
            for rest in ("delivery", "test", "secret", "secret/rotate", "store", "store/remove")]


def test_every_form_without_the_csrf_token_is_refused_and_changes_nothing(
    signed_in: FlaskClient, db_session: Session, shop: Shop, target: Target
) -> None:
    address = set_target(db_session, shop, target.url("/status/201"))
    before = (address.target_url, address.format, bytes(address.signing_secret_enc))
    for path in [*action_paths(address.id), f"{PAGE}/events-webhook"]:
        status, _ = post(signed_in, path, {"target": "https://app.example/other", "format": "raw",
                                           "url": "https://app.example/events"}, csrf=False)
        assert status == 400, path
    after = address_of(db_session, shop)
    assert (after.target_url, after.format, bytes(after.signing_secret_enc)) == before
    assert target.requests == [] and log_lines(db_session, shop) == []


def test_another_resource_s_address_is_not_found_by_any_form(
    signed_in: FlaskClient, db_session: Session, other_shop: Shop
) -> None:
    theirs = address_of(db_session, other_shop)
    before = (theirs.target_url, bytes(theirs.signing_secret_enc))
    for path in action_paths(theirs.id):
        status, page = post(signed_in, path,
                            {"target": "https://evil.example/", "format": "raw", "bucket": "b"})
        assert status == 404, path
        assert "No address" in page
    assert post(signed_in, f"{PAGE}/99999999999/delivery")[0] == 404  # beyond the id column's range
    after = address_of(db_session, other_shop)
    assert (after.target_url, bytes(after.signing_secret_enc)) == before


# --- the test message ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "content_type"), [
    ("json", "application/json"), ("multipart", "multipart/form-data"), ("raw", "multipart/form-data"),
    ("raw_json", "application/json"),
])
def test_a_test_message_reaches_the_target_in_the_address_s_format_with_a_valid_signature(
    signed_in: FlaskClient, db_session: Session, shop: Shop, settings: Settings, target: Target,
    fmt: str, content_type: str,
) -> None:
    address = set_target(db_session, shop, target.url("/status/201"), fmt)
    status, fragment = post(signed_in, f"{PAGE}/{address.id}/test", htmx=True)
    assert status == 200
    assert "HTTP 201" in fragment and "accepted" in fragment
    assert "250 2.0.0 Message accepted by the target (HTTP 201)" in fragment
    assert "status 201" in fragment  # the first bytes of the target's body
    assert "<html" not in fragment  # htmx gets the result alone
    [request] = target.posts_to("/status/201")
    assert request.header("content-type").startswith(content_type)
    assert request.header("user-agent") == "CloudMailin Server"
    secret = SecretBox(settings.encryption_key).decrypt(address.signing_secret_enc)
    assert verify_signature(secret, request.header("x-cloudmailin-signature"), request.body, 300, time.time())
    assert len(request.header("x-cloudmailin-delivery-id")) == 64
    to = f"{address.local_id}@{settings.inbound_domain}"
    if fmt == "json":
        payload = json.loads(request.body)
        assert payload["envelope"]["to"] == to and payload["headers"]["subject"] == "CloudMailin test message"
        assert payload["attachments"][0]["file_name"] == "sample.txt"
    elif fmt == "multipart":
        assert request.form()["envelope[to]"] == to.encode()
    [line] = log_lines(db_session, shop)
    assert re.fullmatch(rf"cloudmailin: address {address.local_id} test message sent from the dashboard "
                        r"status=201 in \d+ms", line)


def test_a_target_s_4xx_is_shown_as_the_permanent_refusal_the_edge_would_answer(
    signed_in: FlaskClient, db_session: Session, shop: Shop, target: Target
) -> None:
    address = set_target(db_session, shop, target.url("/status/422?reason=No+such+order"))
    status, page = post(signed_in, f"{PAGE}/{address.id}/test")  # without htmx: the whole page
    assert status == 200 and "<h1>Settings</h1>" in page
    result = page.split(f'id="test-result-{address.id}"', 1)[1]
    assert "HTTP 422" in result and "rejected" in result
    assert "550 5.0.0 Target rejected the message (HTTP 422): No such order" in result
    assert "second line is not shown" in result  # the body, as the target sent it


@pytest.mark.parametrize(("where", "shown"), [
    # A 5xx: the temporary failure the edge would answer (the sender retries).
    (lambda target: target.url("/status/503"),
     ["HTTP 503", "deferred", "450 4.0.0 Target failed (HTTP 503); try again later"]),
    # Nothing listens: a clear message, not an error page.
    (lambda target: f"http://127.0.0.1:{closed_port()}/mail",
     ["The target could not be reached (connection refused).",
      "450 4.4.1 Target unreachable (connection refused); try again later"]),
    # TLS towards the fixture, which speaks plain HTTP only.
    (lambda target: f"https://127.0.0.1:{target.port}/status/201",
     ["The TLS handshake with the target failed", "Target unreachable (TLS error)"]),
    # A redirect: where it leads, not followed.
    (lambda target: target.url("/redirect?to=/status/201&code=307"),
     ["HTTP 307", "The target redirected to /status/201."]),
], ids=["5xx", "unreachable", "tls", "redirect"])
def test_a_target_that_does_not_accept_the_test_is_shown_with_what_the_edge_would_answer(
    signed_in: FlaskClient, db_session: Session, shop: Shop, target: Target,
    where: Callable[[Target], str], shown: list[str],
) -> None:
    address = set_target(db_session, shop, where(target))
    status, fragment = post(signed_in, f"{PAGE}/{address.id}/test", htmx=True)
    assert status == 200
    for text in shown:
        assert text in fragment
    assert target.posts_to("/status/201") == []
    assert "test message sent from the dashboard" in log_lines(db_session, shop)[0]


def test_a_target_slower_than_the_timeout_is_told_as_a_timeout(
    db_session: Session, shop: Shop, settings: Settings, target: Target
) -> None:
    address = set_target(db_session, shop, target.url("/never"))
    answer = send_test_message(db_session, dataclasses.replace(settings, target_timeout=0.5),
                               shop.account.resource_id, address.id)
    db_session.commit()
    assert answer.status == "client_timeout" and answer.outcome == "deferred"
    assert answer.problem == "The target did not answer within 0.5 seconds."
    assert answer.smtp_reply == "450 4.4.1 Target did not answer within 0.5 seconds; try again later"


def test_an_address_without_a_target_says_to_set_one(
    signed_in: FlaskClient, db_session: Session, shop: Shop
) -> None:
    address = address_of(db_session, shop)
    address.target_url = None
    db_session.commit()
    _, fragment = post(signed_in, f"{PAGE}/{address.id}/test", htmx=True)
    assert "This address has no target URL configured: set one above." in fragment


# --- the signing secret --------------------------------------------------------------------------


def test_reveal_shows_the_secret_in_a_post_answer_that_is_not_cached(
    signed_in: FlaskClient, db_session: Session, shop: Shop, settings: Settings
) -> None:
    address = address_of(db_session, shop)
    secret = SecretBox(settings.encryption_key).decrypt(address.signing_secret_enc)
    token = csrf_token(signed_in.get(PAGE).get_data(as_text=True))
    response = signed_in.post(f"{PAGE}/{address.id}/secret", data={"csrf_token": token},
                              headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.get_data(as_text=True).strip() == f'<code class="secret">{secret}</code>'
    whole = signed_in.post(f"{PAGE}/{address.id}/secret", data={"csrf_token": token})
    assert secret in whole.get_data(as_text=True) and whole.headers["Cache-Control"] == "no-store"
    assert secret not in page_text(signed_in)


def test_rotating_the_secret_replaces_it_at_once_and_says_so(
    signed_in: FlaskClient, db_session: Session, shop: Shop, settings: Settings, target: Target
) -> None:
    address = set_target(db_session, shop, target.url("/status/201"))
    box = SecretBox(settings.encryption_key)
    old = box.decrypt(address.signing_secret_enc)
    assert "the old one stops working" in page_text(signed_in)
    status, _ = post(signed_in, f"{PAGE}/{address.id}/secret/rotate")
    assert status == 303
    new = box.decrypt(address_of(db_session, shop).signing_secret_enc)
    assert new != old and len(new) == 64
    assert "The old one stopped working now" in page_text(signed_in)
    assert log_lines(db_session, shop) == [f"cloudmailin: address {address.local_id} signing secret rotated; "
                                           "the old secret no longer signs POSTs"]
    post(signed_in, f"{PAGE}/{address.id}/test", htmx=True)
    [request] = target.posts_to("/status/201")
    signature = request.header("x-cloudmailin-signature")
    assert verify_signature(new, signature, request.body, 300, time.time())
    assert not verify_signature(old, signature, request.body, 300, time.time())


# --- the store -----------------------------------------------------------------------------------


def store_form(s3: S3Server, prefix: str, **changes: str) -> dict[str, str]:
    return {"bucket": STORE_BUCKET, "prefix": prefix, "region": "", "endpoint_url": s3.endpoint_url,
            "access_key_id": s3.access_key_id, "secret_access_key": s3.secret_access_key,
            "attachments": "on", **changes}


def test_saving_a_store_test_writes_it_and_never_shows_its_secret(
    signed_in: FlaskClient, db_session: Session, shop: Shop, settings: Settings, s3_server: S3Server
) -> None:
    address = address_of(db_session, shop)
    status, _ = post(signed_in, f"{PAGE}/{address.id}/store",
                     store_form(s3_server, "dash-store", messages="on"))
    assert status == 303
    page = page_text(signed_in)
    assert f"a test object was written to bucket {STORE_BUCKET} and deleted again" in page
    assert f"Saved: ••••{s3_server.access_key_id[-4:]}; leave blank to keep it." in page
    assert s3_server.secret_access_key not in page and f'value="{s3_server.access_key_id}"' not in page
    saved = address_of(db_session, shop)
    assert (saved.store_bucket, saved.store_prefix) == (STORE_BUCKET, "dash-store")
    assert saved.store_messages is True
    assert log_lines(db_session, shop) == [
        f"cloudmailin: address {address.local_id} changed store=bucket:{STORE_BUCKET}"]

    # Blank keys keep the saved ones: only the prefix changes.
    status, _ = post(signed_in, f"{PAGE}/{address.id}/store",
                     store_form(s3_server, "dash-other", access_key_id="", secret_access_key=""))
    assert status == 303
    saved = address_of(db_session, shop)
    assert saved.store_prefix == "dash-other" and saved.store_messages is False
    assert SecretBox(settings.encryption_key).decrypt(saved.store_secret_access_key_enc or b"") == \
        s3_server.secret_access_key

    status, _ = post(signed_in, f"{PAGE}/{address.id}/store/remove")
    assert status == 303 and address_of(db_session, shop).store_bucket is None
    assert "Store removed" in page_text(signed_in)


def test_a_refused_store_is_explained_beside_its_field_or_in_the_store_s_own_words(
    signed_in: FlaskClient, db_session: Session, shop: Shop, s3_server: S3Server
) -> None:
    address = address_of(db_session, shop)
    path = f"{PAGE}/{address.id}/store"
    status, page = post(signed_in, path, store_form(s3_server, "p", bucket="Not_A_Bucket"))
    assert status == 422
    bucket_error = field_error(page, f"store-{address.id}-bucket")
    assert bucket_error.startswith("store.bucket must be an S3 bucket name")
    assert s3_server.secret_access_key not in page  # a typed secret is not sent back either

    # The test write fails: the store's answer belongs to no one field.
    status, page = post(signed_in, path, store_form(s3_server, "p", secret_access_key="wrong-secret"))
    assert status == 422
    alert = re.search(rf'<article id="store-{address.id}">.*?<p class="error" role="alert">(.*?)</p>',
                      page, re.S)
    assert alert is not None
    assert alert.group(1).startswith(f"The store refused a test object in bucket '{STORE_BUCKET}':")
    assert address_of(db_session, shop).store_bucket is None


def test_a_plan_without_stores_says_so_instead_of_a_form(
    client: FlaskClient, db_session: Session, settings: Settings
) -> None:
    free = new_shop(db_session, settings, domain=None)
    resource = db_session.get(Resource, free.account.resource_id)
    assert resource is not None
    resource.plan = "free"
    db_session.commit()
    sign_in(client, settings, free.account.resource_id)
    page = page_text(client)
    assert "The free plan has no attachment or message store" in page and 'name="bucket"' not in page
    address = address_of(db_session, free)
    status, page = post(client, f"{PAGE}/{address.id}/store", {"bucket": "some-bucket"})
    assert status == 422 and "The free plan has no attachment or message store" in page


# --- the events webhook --------------------------------------------------------------------------


def test_the_events_webhook_is_set_shown_masked_kept_and_removed(
    signed_in: FlaskClient, db_session: Session, shop: Shop, settings: Settings
) -> None:
    status, _ = post(signed_in, f"{PAGE}/events-webhook", {"url": "https://hook:pw123@app.example/events"})
    assert status == 303
    page = page_text(signed_in)
    assert 'value="https://hook:•••@app.example/events"' in page and "pw123" not in page
    assert "Events webhook saved." in page
    status, _ = post(signed_in, f"{PAGE}/events-webhook", {"url": "https://hook:•••@app.example/events"})
    assert status == 303
    db_session.expire_all()
    resource = db_session.get(Resource, shop.account.resource_id)
    assert resource is not None and resource.events_webhook_url_enc is not None
    assert SecretBox(settings.encryption_key).decrypt(resource.events_webhook_url_enc) == \
        "https://hook:pw123@app.example/events"
    status, _ = post(signed_in, f"{PAGE}/events-webhook", {"url": ""})
    assert status == 303
    db_session.expire_all()
    assert db_session.get(Resource, shop.account.resource_id).events_webhook_url_enc is None  # type: ignore[union-attr]
    assert log_lines(db_session, shop) == [
        "cloudmailin: events webhook set", "cloudmailin: events webhook removed"]


def test_an_events_webhook_the_api_refuses_is_shown_beside_the_field(
    signed_in: FlaskClient, db_session: Session, shop: Shop
) -> None:
    status, page = post(signed_in, f"{PAGE}/events-webhook", {"url": "not a url"})
    assert status == 422
    assert field_error(page, "events-webhook-url") == \
        "The target URL contains spaces or control characters; encode them (%20)."
