"""Reading back a message the address's message store kept, for the dashboard's detail and download.

The SMTP edge wrote the raw message under `InboundMessage.stored_message_key` in the address's
store (a bucket of the customer's). This reads it with the address's current store settings and
`stores.s3_client`, with a short timeout of its own: a page waits at most a few seconds for a slow
or unreachable store, and then says so (`StoreUnreadable`) instead of failing.

What is shown is the message as the store holds it, the bytes every format's payload was rendered
from (the JSON, multipart or raw POST is made of it by the edge's render at delivery time). The
POST body itself is not kept anywhere, and rendering it again here would upload the attachments to
the store once more (`smtp_edge.payloads.prepare_post` does), so the raw message is what is shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..crypto import DecryptionError
from ..models import Address
from ..settings import Settings
from .stores import DEFAULT_REGION, StoreConfig, object_url, s3_client, store_error_text, stored_config

PREVIEW_BYTES = 64 * 1024
"""How much of a stored message the detail page shows; the rest is in the download."""
READ_TIMEOUT = 3.0
"""Seconds a dashboard request waits for the store to connect and to answer each read (at most
`STORE_TIMEOUT`): enough for S3 across regions, short enough for a page."""
DOWNLOAD_CHUNK = 64 * 1024


class StoreUnreadable(Exception):
    """The kept message cannot be read now; `text` says why, in words for the page."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class StoredPreview:
    """The first `PREVIEW_BYTES` of a kept message, its whole size and where it is."""

    key: str
    url: str
    size: int
    head: bytes

    @property
    def truncated(self) -> bool:
        return len(self.head) < self.size

    @property
    def text(self) -> str:
        """The head as text: mail is 7-bit or UTF-8 nearly always; anything else shows replaced."""
        return self.head.decode("utf-8", "replace")


@dataclass(frozen=True)
class StoredBody:
    """A kept message being read: its size and its bytes in chunks (closed at the end)."""

    key: str
    size: int | None
    chunks: Iterator[bytes]


def _store(settings: Settings, address: Address | None) -> StoreConfig:
    if address is None:
        raise StoreUnreadable("The address this message was sent to no longer exists, nor its store.")
    try:
        config = stored_config(settings, address)
    except DecryptionError:
        config = None
    if config is None:
        raise StoreUnreadable(
            "The address has no store now, so the kept message cannot be read: set the store again "
            "(same bucket) to see it."
        )
    return config


def _client(settings: Settings, store: StoreConfig) -> Any:
    return s3_client(store, min(READ_TIMEOUT, settings.store_timeout))


def _get(
    settings: Settings, address: Address | None, key: str, **ranged: str
) -> tuple[StoreConfig, dict[str, Any]]:
    import botocore.exceptions

    store = _store(settings, address)
    try:
        answer: dict[str, Any] = _client(settings, store).get_object(Bucket=store.bucket, Key=key, **ranged)
    except botocore.exceptions.ClientError as exc:
        raise StoreUnreadable(
            f"The store did not give the kept message back ({store_error_text(exc)})."
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise StoreUnreadable(
            f"The store could not be reached just now ({store_error_text(exc)}); try again later."
        ) from None
    return store, answer


def stored_url(address: Address | None, key: str) -> str | None:
    """Where the kept message is in the address's current store (path style under a custom
    endpoint, Amazon's virtual-host style else); None when the address has no store now. Only the
    bucket, region and endpoint make the URL, so no credential is decrypted for it."""
    if address is None or not address.store_bucket:
        return None
    where = StoreConfig(
        bucket=address.store_bucket, prefix=address.store_prefix or "",
        region=address.store_region or DEFAULT_REGION, endpoint_url=address.store_endpoint_url,
        access_key_id="", secret_access_key="",
    )
    return object_url(where, key)


def read_preview(settings: Settings, address: Address | None, key: str) -> StoredPreview:
    """The kept message's first `PREVIEW_BYTES` (one ranged GET) and its size."""
    import botocore.exceptions

    store, answer = _get(settings, address, key, Range=f"bytes=0-{PREVIEW_BYTES - 1}")
    try:
        head: bytes = answer["Body"].read()
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        raise StoreUnreadable(f"The store stopped answering ({exc}); try again later.") from None
    finally:
        answer["Body"].close()
    total = str(answer.get("ContentRange") or "").rpartition("/")[2]  # "bytes 0-65535/123456"
    size = int(total) if total.isdigit() else len(head)
    return StoredPreview(key=key, url=object_url(store, key), size=size, head=head)


def open_body(settings: Settings, address: Address | None, key: str) -> StoredBody:
    """The whole kept message as a stream of chunks, for a download that never holds it all."""
    _, answer = _get(settings, address, key)
    body = answer["Body"]

    def chunks() -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(DOWNLOAD_CHUNK)
        finally:
            body.close()

    length = answer.get("ContentLength")
    return StoredBody(key=key, size=int(length) if length is not None else None, chunks=chunks())


def download_name(key: str) -> str:
    """The object's own name (`2026_12_01_10_00_00_<md5>.eml`), without the store's prefix."""
    return key.rpartition("/")[2] or "message.eml"
