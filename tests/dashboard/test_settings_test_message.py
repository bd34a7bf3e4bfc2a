"""The Settings page's test message and signing secret: the sample reaches a real HTTP target on
127.0.0.1 signed as the edge signs, and the answer is judged as the edge judges it."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import time
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provider.crypto import SecretBox
from provider.inbound import verify_signature
from provider.services.target_test import send_test_message
from provider.settings import Settings

from ..smtp_edge.conftest import Target
from .conftest import Shop, csrf_token
from .settings_forms import (  # noqa: F401  (logged_shop: the fixture `shop` of these tests)
    PAGE,
    address_of,
    closed_port,
    log_lines,
    logged_shop,
    page_text,
    post,
    set_target,
)

# --- the test message ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "content_type"), [
    ("json", "application/json"), ("multipart", "multipart/form-data"), ("raw", "multipart/form-data"),
    ("raw_json", "application/json"),
])
def test_a_test_message_reaches_the_target_in_the_address_s_format_with_a_valid_signature(
    signed_in: FlaskClient, db_session: Session, shop: Shop, settings: Settings, target: Target,
    fmt: str, content_type: str,
) -> None:
    # Credentials in the target go out as Basic auth, as the edge sends them (percent-decoded).
    address = set_target(db_session, shop, target.url("/status/201", userinfo="app:p%40ss"), fmt)
    status, fragment = post(signed_in, f"{PAGE}/{address.id}/test", htmx=True)
    assert status == 200
    assert "HTTP 201" in fragment and "accepted" in fragment
    assert "250 2.0.0 Message accepted by the target (HTTP 201)" in fragment
    assert "status 201" in fragment  # the first bytes of the target's body
    assert "<html" not in fragment  # htmx gets the result alone
    [request] = target.posts_to("/status/201")
    assert request.header("content-type").startswith(content_type)
    assert request.header("user-agent") == "CloudMailin Server"
    assert request.header("authorization") == "Basic " + base64.b64encode(b"app:p@ss").decode()
    assert "p%40ss" not in fragment and "app:•••@127.0.0.1" in fragment
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
