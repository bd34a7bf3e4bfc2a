"""The Settings page: each form saves through the addresses API's services, shows its refusal
beside the field, needs the CSRF token and 404s another resource's address."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from dev.services import S3Server
from provider.crypto import SecretBox
from provider.models import Resource
from provider.settings import Settings
from tests.conftest import STORE_BUCKET

from ..smtp_edge.conftest import Target
from .conftest import Shop, new_shop, sign_in
from .settings_forms import (  # noqa: F401  (logged_shop: the fixture `shop` of these tests)
    PAGE,
    address_of,
    field_error,
    log_lines,
    logged_shop,
    page_text,
    post,
    set_target,
)

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
