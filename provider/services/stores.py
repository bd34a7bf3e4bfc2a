"""An address's S3-compatible store: what its settings may be, how objects are named, how it is reached.

One store per address (bucket, optional prefix, region, endpoint URL, access key id and secret),
used for attachments, for whole messages, or both (`attachments` and `messages` switches): a
customer keeps one bucket for a mail app far more often than two, and two switches read more
simply than two sets of credentials. The credentials are kept encrypted (`*_enc` columns, so
`flask secrets rotate` re-encrypts them) and never shown back: the key id as a hint of its last
four characters, the secret as a mask.

Saving a store writes and deletes a test object with the new settings (`check_store`), so a wrong
bucket, key or endpoint is refused at once with the store's own error code and message, not found
later as deferred mail. The SMTP edge (`smtp_edge/stores.py`) names objects with the functions
here, so the names are the spec's wherever they are made:
`[prefix/]<20 hex><original extension>` for an attachment and
`[prefix/]YYYY_MM_DD_HH_MM_SS_<md5>.eml` for a message.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from ..crypto import DecryptionError, SecretBox, box_for
from ..models import Address
from ..settings import Settings
from .addresses import MASKED_PASSWORD, InvalidAddressSetting

STORE_FIELDS = (
    "bucket", "prefix", "region", "endpoint_url", "access_key_id", "secret_access_key",
    "attachments", "messages",
)
DEFAULT_REGION = "us-east-1"
KEY_HINT_PREFIX = "••••"
"""A key id is shown as `••••` and its last four characters, enough to tell two keys apart."""
_BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z0-9-]{1,64}$")
_PREFIX_CHARS = re.compile(r"^[A-Za-z0-9!_.*'()/=+-]*$")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,16}$")
_CREDENTIAL = re.compile(r"^[\x21-\x7e]{1,256}$")


class InvalidStore(InvalidAddressSetting):
    """Store settings that cannot be used; the message says why (the store's own words included)."""


class StoresNotInPlan(PermissionError):
    """The plan has no stores (free, test): the message names the plan."""

    def __init__(self, plan: str) -> None:
        super().__init__(
            f"The {plan} plan has no attachment or message store; upgrade to starter or above to use one."
        )


@dataclass(frozen=True)
class StoreConfig:
    """A store as the edge uses it: credentials in clear, only in memory."""

    bucket: str
    prefix: str
    region: str
    endpoint_url: str | None
    access_key_id: str
    secret_access_key: str
    attachments: bool = True
    messages: bool = False


@dataclass(frozen=True)
class RouteStore:
    """A store as the edge's route cache keeps it: credentials still encrypted."""

    bucket: str
    prefix: str
    region: str
    endpoint_url: str | None
    access_key_id_enc: bytes
    secret_access_key_enc: bytes
    attachments: bool
    messages: bool

    @classmethod
    def of_row(cls, row: Any) -> RouteStore | None:
        """From the route query's row; None when the address stores nothing."""
        if not row.store_bucket or not (row.store_attachments or row.store_messages):
            return None
        if not row.store_access_key_id_enc or not row.store_secret_access_key_enc:
            return None
        return cls(
            bucket=row.store_bucket,
            prefix=row.store_prefix or "",
            region=row.store_region or DEFAULT_REGION,
            endpoint_url=row.store_endpoint_url,
            access_key_id_enc=bytes(row.store_access_key_id_enc),
            secret_access_key_enc=bytes(row.store_secret_access_key_enc),
            attachments=row.store_attachments,
            messages=row.store_messages,
        )

    def decrypted(self, box: SecretBox) -> StoreConfig:
        return StoreConfig(
            bucket=self.bucket,
            prefix=self.prefix,
            region=self.region,
            endpoint_url=self.endpoint_url,
            access_key_id=box.decrypt(self.access_key_id_enc),
            secret_access_key=box.decrypt(self.secret_access_key_enc),
            attachments=self.attachments,
            messages=self.messages,
        )


# --- reading what a client sends ---------------------------------------------------------------


def store_fields(value: object, current: StoreConfig | None) -> StoreConfig | None:
    """The store `value` (a JSON object, or null to remove it) asks for, merged over `current`:
    fields left out keep their value, so credentials need not be sent again to change a prefix."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidStore("store must be a JSON object (or null to remove the store).")
    for name in value:
        if name not in STORE_FIELDS:
            raise InvalidStore(
                f"Unknown store field {str(name)[:40]!r}; a store has {', '.join(STORE_FIELDS)}."
            )
    merged: dict[str, Any] = {
        "bucket": None, "prefix": "", "region": DEFAULT_REGION, "endpoint_url": None,
        "access_key_id": None, "secret_access_key": None, "attachments": True, "messages": False,
    }
    if current is not None:
        merged.update(current.__dict__)
    for name, item in value.items():
        merged[name] = item
    for name in ("bucket", "access_key_id", "secret_access_key"):
        if merged[name] is None:
            raise InvalidStore(f"store.{name} is required.")
    return StoreConfig(
        bucket=_bucket(merged["bucket"]),
        prefix=_prefix(merged["prefix"]),
        region=_region(merged["region"]),
        endpoint_url=_endpoint(merged["endpoint_url"]),
        access_key_id=_credential("access_key_id", merged["access_key_id"]),
        secret_access_key=_credential("secret_access_key", merged["secret_access_key"]),
        attachments=_switch("attachments", merged["attachments"]),
        messages=_switch("messages", merged["messages"]),
    )


def _bucket(value: object) -> str:
    if isinstance(value, str) and _BUCKET.match(value.strip()):
        return value.strip()
    raise InvalidStore(
        "store.bucket must be an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens."
    )


def _prefix(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 512 or not _PREFIX_CHARS.match(value):
        raise InvalidStore(
            "store.prefix must be at most 512 letters, digits and ! _ . * ' ( ) / = + - characters."
        )
    prefix = value.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise InvalidStore("store.prefix may not hold empty, '.' or '..' segments.")
    return prefix


def _region(value: object) -> str:
    if value is None:
        return DEFAULT_REGION
    if isinstance(value, str) and _REGION.match(value.strip()):
        return value.strip()
    raise InvalidStore("store.region must be a region name such as eu-west-1.")


def _endpoint(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) <= 2048:
        parts = urlsplit(value.strip())
        plain = parts.username is None and parts.password is None and not parts.query and not parts.fragment
        if parts.scheme in ("http", "https") and parts.hostname and plain:
            return value.strip().rstrip("/")
    raise InvalidStore(
        "store.endpoint_url must be an http:// or https:// URL without credentials "
        "(leave it out for Amazon S3)."
    )


def _credential(name: str, value: object) -> str:
    if isinstance(value, str) and (value == MASKED_PASSWORD or value.startswith(KEY_HINT_PREFIX)):
        raise InvalidStore(
            f"store.{name} is the masked value we show; send the real one, or leave it out to keep it."
        )
    if isinstance(value, str) and _CREDENTIAL.match(value):
        return value
    raise InvalidStore(f"store.{name} must be 1 to 256 printable characters without spaces.")


def _switch(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidStore(f"store.{name} must be true or false.")


def key_hint(access_key_id: str) -> str:
    return KEY_HINT_PREFIX + access_key_id[-4:]


# --- object names and URLs ---------------------------------------------------------------------


def attachment_key(prefix: str, file_name: str | None) -> str:
    """`[prefix/]<20 hex><original extension>`: random, so names never collide or leak anything
    about the message; the extension only when it is plain (`.pdf`, not `.tar gz` or a path)."""
    match = _EXTENSION.search(file_name or "")
    return _prefixed(prefix, secrets.token_hex(10) + (match.group(0) if match else ""))


def message_key(prefix: str, received_at: datetime, md5: str) -> str:
    stamp = received_at.astimezone(UTC).strftime("%Y_%m_%d_%H_%M_%S")
    return _prefixed(prefix, f"{stamp}_{md5}.eml")


def _prefixed(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def object_url(store: StoreConfig, key: str) -> str:
    """Where the object is: path style under a custom endpoint, Amazon's virtual-host style else."""
    path = quote(key, safe="/")
    if store.endpoint_url:
        return f"{store.endpoint_url}/{store.bucket}/{path}"
    return f"https://{store.bucket}.s3.{store.region}.amazonaws.com/{path}"


# --- reaching the store ------------------------------------------------------------------------


def s3_client(store: StoreConfig, timeout: float) -> Any:
    """A boto3 client for the store: one attempt beyond the first, bounded connect and read times,
    checksums only where S3 requires them (S3-compatible servers differ in the newer ones)."""
    import boto3
    import botocore.config

    config = botocore.config.Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 2, "mode": "standard"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path" if store.endpoint_url else "auto"},
        max_pool_connections=32,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=store.endpoint_url,
        region_name=store.region,
        aws_access_key_id=store.access_key_id,
        aws_secret_access_key=store.secret_access_key,
        config=config,
    )


def store_error_text(exc: BaseException) -> str:
    """The store's own words for a failure: `Code: Message` from S3, else the client's error."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code, message = error.get("Code"), error.get("Message")
        if code or message:
            return f"{code or 'Error'}: {message or 'no message'}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def check_store(store: StoreConfig, timeout: float) -> None:
    """Write and delete a test object with these settings; `InvalidStore` with the store's answer
    if either fails, so a wrong bucket, key or endpoint is told at once."""
    import botocore.exceptions

    key = _prefixed(store.prefix, f"cloudmailin-test-{secrets.token_hex(8)}.txt")
    client = s3_client(store, timeout)
    try:
        client.put_object(
            Bucket=store.bucket, Key=key, Body=b"CloudMailin store check; safe to delete.\n",
            ContentType="text/plain",
        )
        client.delete_object(Bucket=store.bucket, Key=key)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise InvalidStore(
            f"The store refused a test object in bucket {store.bucket!r}: {store_error_text(exc)}"
        ) from None


# --- the address's columns ---------------------------------------------------------------------


def stored_config(settings: Settings, address: Address) -> StoreConfig | None:
    """The address's store with its credentials decrypted; None when it has none."""
    key_id, secret = address.store_access_key_id_enc, address.store_secret_access_key_enc
    if not address.store_bucket or not key_id or not secret:
        return None
    box = box_for(settings)
    return StoreConfig(
        bucket=address.store_bucket,
        prefix=address.store_prefix or "",
        region=address.store_region or DEFAULT_REGION,
        endpoint_url=address.store_endpoint_url,
        access_key_id=box.decrypt(key_id),
        secret_access_key=box.decrypt(secret),
        attachments=address.store_attachments,
        messages=address.store_messages,
    )


def write_config(settings: Settings, address: Address, store: StoreConfig | None) -> None:
    box = box_for(settings)
    address.store_bucket = store.bucket if store else None
    address.store_prefix = store.prefix if store else None
    address.store_region = store.region if store else None
    address.store_endpoint_url = store.endpoint_url if store else None
    address.store_access_key_id_enc = box.encrypt(store.access_key_id) if store else None
    address.store_secret_access_key_enc = box.encrypt(store.secret_access_key) if store else None
    address.store_attachments = store.attachments if store else False
    address.store_messages = store.messages if store else False


def shown_config(settings: Settings, address: Address) -> dict[str, Any] | None:
    """The store as the API and the dashboard show it: no secret, the key id as a hint."""
    if not address.store_bucket or not address.store_access_key_id_enc:
        return None
    try:
        hint = key_hint(box_for(settings).decrypt(address.store_access_key_id_enc))
    except DecryptionError:
        hint = KEY_HINT_PREFIX + "(unreadable: set it again)"
    return {
        "bucket": address.store_bucket,
        "prefix": address.store_prefix or "",
        "region": address.store_region or DEFAULT_REGION,
        "endpoint_url": address.store_endpoint_url,
        "access_key_id": hint,
        "secret_access_key": MASKED_PASSWORD,
        "attachments": address.store_attachments,
        "messages": address.store_messages,
    }
