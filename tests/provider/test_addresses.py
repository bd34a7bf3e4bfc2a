"""Forward addresses and target URL validation."""

from __future__ import annotations

import re
import uuid

import pytest

from provider.crypto import SecretBox
from provider.models import Resource
from provider.services.addresses import (
    InvalidTarget,
    display_target,
    forward_address,
    validate_target,
)
from tests.domain_rows import create_address


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/incoming",
        "http://127.0.0.1:3000/mail?token=abc",
        "https://user:p%40ss@app.herokuapp.com/in",
        "https://[::1]:8443/in",
        "https://bücher.example/in",
        "HTTPS://Example.COM/in",
    ],
)
def test_valid_targets_are_returned_unchanged(url):
    assert validate_target(url) == url


def test_surrounding_whitespace_is_trimmed():
    assert validate_target("  https://example.com/in\n") == "https://example.com/in"


@pytest.mark.parametrize(
    "url",
    [
        "mailto:me@example.com",
        "https://exa\tmple.com/",
        "https://example.com/a b",
        "https://-bad-.example.com/",
        "https://[not-ipv6]/",
        "https://example.com:0/",
        "https://" + "a" * 64 + ".example.com/",
        "https://example.com/" + "x" * 2100,
        None,
        42,
    ],
)
def test_invalid_targets_raise_a_readable_error(url):
    with pytest.raises(InvalidTarget) as raised:
        validate_target(url)
    assert str(raised.value).startswith("The target")


def test_display_target_hides_only_the_password():
    assert display_target("https://me:pw@example.com/in?x=1") == "https://me:•••@example.com/in?x=1"
    assert display_target("https://example.com/in") == "https://example.com/in"
    assert display_target(None) is None


def test_created_addresses_have_20_hex_local_ids_and_an_encrypted_signing_secret(
    db_session, settings
):
    resource = Resource(id=str(uuid.uuid4()), plan="free")
    db_session.add(resource)
    first = create_address(db_session, settings, resource, None)
    second = create_address(db_session, settings, resource, "https://example.com/in")
    db_session.commit()
    assert re.fullmatch(r"[0-9a-f]{20}", first.local_id)
    assert first.local_id != second.local_id
    assert forward_address(settings, first.local_id) == f"{first.local_id}@cloudmailin.test"
    secret = SecretBox(settings.encryption_key).decrypt(first.signing_secret_enc)
    assert len(secret) == 64 and secret.encode() not in first.signing_secret_enc
