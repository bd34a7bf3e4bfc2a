"""Putting a message's attachments and the message itself in the address's S3-compatible store.

Runs between parse and render (`payloads.prepare_post`), before the POST: the POST then carries
each attachment's `url` instead of its content, and `envelope.store_url` when the message is
stored. boto3 is blocking, so all of it runs in this module's own threads (`StoreUploads.run`),
never on the event loop and never in the parse pools, where a slow store would hold up other
addresses' mail. Each attachment's decoded bytes are handed to boto3 as they are (no copy, no
re-encoding) and dropped from the message once uploaded, so a 25 MB attachment costs no more
memory than it does without a store.

Any failure of the store (refused, unreachable, slower than STORE_TIMEOUT) is a `StoreFailed`:
the sender is told 450 and retries, and the history records `store_error` with the store's words.
The message is never POSTed with attachments missing. Objects already uploaded are kept, as they
are when the target rejects the message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from provider.crypto import SecretBox
from provider.errors import StoreFailed
from provider.inbound import Envelope, ParsedMessage
from provider.services.stores import (
    RouteStore,
    StoreConfig,
    attachment_key,
    message_key,
    object_url,
    s3_client,
    store_error_text,
)
from provider.settings import Settings

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

STORE_THREADS = 16
"""Messages being stored at once, per edge process; most of their time is spent waiting."""
LARGE_STORE_THREADS = 2
LARGE_MESSAGE_BYTES = 1 << 20
"""Messages from this size on are parsed and stored in a pool of their own, as in the edge's
parse pools, so a few large ones bound the memory and never queue the small ones."""


class StoreUploads:
    """The store threads and a boto3 client per store (clients are thread safe; making one is not
    cheap, ~10 ms, and not safe to do from several threads at once)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._box = SecretBox(settings.encryption_key, settings.encryption_keys_old)
        self._pool = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="edge-store")
        self._large_pool = ThreadPoolExecutor(LARGE_STORE_THREADS, thread_name_prefix="edge-store-large")
        self._clients: dict[RouteStore, tuple[StoreConfig, Any]] = {}
        self._lock = threading.Lock()

    async def run(self, size: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        pool = self._large_pool if size >= LARGE_MESSAGE_BYTES else self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._large_pool.shutdown(wait=False, cancel_futures=True)

    def _client(self, store: RouteStore) -> tuple[StoreConfig, Any]:
        with self._lock:
            found = self._clients.get(store)
            if found is None:
                if len(self._clients) > 1000:  # settings changed many times: start over
                    self._clients.clear()
                config = store.decrypted(self._box)
                found = self._clients[store] = (config, s3_client(config, self.settings.store_timeout))
            return found

    def put(
        self, store: RouteStore, raw: bytes, parsed: ParsedMessage, envelope: Envelope, received_at: datetime
    ) -> tuple[ParsedMessage, Envelope, str | None]:
        """Upload what the address stores; the message with `url`s in place of contents, the
        envelope with `store_url`, and the message's object key (None: messages are not stored),
        which the history keeps for a re-send. `StoreFailed` if the store does not take an object."""
        import botocore.exceptions

        config, client = self._client(store)
        stored_key = None
        try:
            if config.messages:
                key = stored_key = message_key(config.prefix, received_at, parsed.md5)
                client.put_object(Bucket=config.bucket, Key=key, Body=raw, ContentType="message/rfc822")
                envelope = replace(envelope, store_url=object_url(config, key))
            if config.attachments and parsed.attachments:
                stored = []
                for attachment in parsed.attachments:
                    key = attachment_key(config.prefix, attachment.file_name)
                    client.put_object(
                        Bucket=config.bucket,
                        Key=key,
                        Body=attachment.content,
                        ContentType=attachment.content_type or "application/octet-stream",
                    )
                    stored.append(replace(attachment, content=b"", url=object_url(config, key)))
                parsed = replace(parsed, attachments=stored)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            detail = store_error_text(exc)
            log.warning("store %s failed: %s", config.bucket, detail)
            raise StoreFailed(detail) from None
        return parsed, envelope, stored_key
