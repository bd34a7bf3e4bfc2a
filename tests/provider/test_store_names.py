"""Object names in an address's store: `[prefix/]<20 hex><extension>` for attachments,
`[prefix/]YYYY_MM_DD_HH_MM_SS_<md5>.eml` for messages, and the URLs the payloads carry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from provider.services.stores import StoreConfig, attachment_key, message_key, object_url


@pytest.mark.parametrize(
    ("file_name", "extension"),
    [
        ("invoice.pdf", ".pdf"),
        ("archive.tar.gz", ".gz"),
        ("Photo.JPEG", ".JPEG"),
        ("no extension", ""),
        (None, ""),
        ("../../etc/passwd", ""),
        ("evil.p/df", ""),
        ("report.pdf ", ""),
        ("x.thisextensionistoolong", ""),
        ("résumé.dóc", ""),
    ],
)
def test_an_attachment_key_is_random_hex_with_only_a_plain_extension(
    file_name: str | None, extension: str
) -> None:
    key = attachment_key("mail/in", file_name)

    assert re.fullmatch(r"mail/in/[0-9a-f]{20}" + re.escape(extension), key)


def test_attachment_keys_never_repeat_and_need_no_prefix() -> None:
    keys = {attachment_key("", "a.txt") for _ in range(1000)}

    assert len(keys) == 1000 and all(re.fullmatch(r"[0-9a-f]{20}\.txt", key) for key in keys)


def test_a_message_key_is_the_utc_receive_time_and_the_md5() -> None:
    received = datetime(2026, 12, 1, 11, 2, 3, tzinfo=timezone(timedelta(hours=1)))

    assert message_key("p", received, "0" * 32) == f"p/2026_12_01_10_02_03_{'0' * 32}.eml"
    assert message_key("", received.astimezone(UTC), "ab" * 16) == f"2026_12_01_10_02_03_{'ab' * 16}.eml"


def test_urls_are_path_style_under_an_endpoint_and_virtual_host_style_on_amazon() -> None:
    custom = StoreConfig("bucket-a", "", "eu-west-1", "http://127.0.0.1:8333", "k", "s")
    amazon = StoreConfig("bucket-a", "", "eu-west-1", None, "k", "s")

    assert object_url(custom, "in/a b.pdf") == "http://127.0.0.1:8333/bucket-a/in/a%20b.pdf"
    assert object_url(amazon, "in/x.pdf") == "https://bucket-a.s3.eu-west-1.amazonaws.com/in/x.pdf"
