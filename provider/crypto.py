"""Secrets at rest and secrets in flight.

OAuth tokens, store credentials and DKIM keys are encrypted with Fernet under ENCRYPTION_KEY
(DESIGN.md decision 4). API keys and SMTP passwords are random, high-entropy strings, so a plain
SHA-256 digest is enough to store them: there is nothing to brute-force, and a fast hash keeps
SMTP AUTH cheap. Every comparison of a secret goes through `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken


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
    """Encrypts and decrypts small secrets with the deployment's key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(fernet_key(key))

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode("utf-8")
        except InvalidToken as exc:
            raise DecryptionError("stored secret cannot be decrypted with ENCRYPTION_KEY") from exc


def new_api_key() -> str:
    """A 32-character key: 160 bits of entropy, URL- and SMTP-safe (hex)."""
    return secrets.token_hex(16)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality for secrets given as text (Basic auth passwords, SSO tokens)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
