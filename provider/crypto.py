"""Secrets at rest and secrets in flight.

OAuth tokens, log drain URLs, signing secrets, DKIM keys and the SMTP/API keys themselves are
encrypted with Fernet under ENCRYPTION_KEY (DESIGN.md decision 4), each in a binary column whose
name ends in `_enc`: the re-encryption command (`provider.services.reencrypt`) finds them by that
suffix. Rotation: ENCRYPTION_KEY encrypts, and the keys in ENCRYPTION_KEYS_OLD still decrypt
(MultiFernet), so a new key can be deployed first and the stored secrets re-encrypted after.

API keys and SMTP passwords are random, high-entropy strings, so a plain SHA-256 digest is enough
to authenticate them: there is nothing to brute-force, and a fast hash keeps SMTP AUTH cheap.
Every comparison of a secret goes through `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from .settings import Settings


class DecryptionError(ValueError):
    """A stored secret could not be decrypted (wrong ENCRYPTION_KEY or corrupted data)."""


def new_encryption_key() -> str:
    return Fernet.generate_key().decode("ascii")


def fernet_key(key: str) -> bytes:
    """ENCRYPTION_KEY as Fernet takes it: a Fernet key (32 bytes, url-safe base64) as is, or 64 hex
    digits (the same 32 random bytes, as Heroku's `secret` generator in app.json makes them)."""
    if len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key):
        return base64.urlsafe_b64encode(bytes.fromhex(key))
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(
            "ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes) or 64 hex digits"
        )
    return key.encode("ascii")


class SecretBox:
    """Encrypts small secrets with the deployment's current key; decrypts with it or an old one."""

    def __init__(self, key: str, old_keys: Sequence[str] = ()) -> None:
        self._current = Fernet(fernet_key(key))
        self._fernet = MultiFernet([self._current, *(Fernet(fernet_key(k)) for k in old_keys)])

    def encrypt(self, plaintext: str) -> bytes:
        return self._current.encrypt(plaintext.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode("utf-8")
        except InvalidToken as exc:
            raise DecryptionError(
                "stored secret cannot be decrypted with ENCRYPTION_KEY or ENCRYPTION_KEYS_OLD"
            ) from exc

    def is_current(self, token: bytes) -> bool:
        """Whether the current key decrypts `token` (so re-encrypting it would change nothing)."""
        try:
            self._current.decrypt(bytes(token))
        except InvalidToken:
            return False
        return True

    def reencrypt(self, token: bytes) -> bytes:
        """`token` under the current key (its plaintext unchanged); DecryptionError if no key fits."""
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken as exc:
            raise DecryptionError(
                "stored secret cannot be decrypted with ENCRYPTION_KEY or ENCRYPTION_KEYS_OLD"
            ) from exc


def box_for(settings: Settings) -> SecretBox:
    """The deployment's box: what every service encrypts and decrypts with."""
    return _box(settings.encryption_key, settings.encryption_keys_old)


@lru_cache(maxsize=8)
def _box(key: str, old_keys: tuple[str, ...]) -> SecretBox:
    return SecretBox(key, old_keys)


def new_api_key() -> str:
    """A 32-character key: 128 bits of entropy, URL- and SMTP-safe (hex)."""
    return secrets.token_hex(16)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality for secrets given as text (Basic auth passwords, SSO tokens)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
