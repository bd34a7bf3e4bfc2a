"""SMTP and API credentials: the USER:KEY pair in CLOUDMAILIN_SMTP_URL.

Keys are stored only as SHA-256 hashes (DESIGN.md decision 4), yet Heroku may ask for the same
config twice (a repeated provision POST must answer the same config) and the async provisioning
job must send the config hours after the key was issued. So a key is not random: it is
HMAC-SHA256(ENCRYPTION_KEY, username), and `key_for` can compute it again whenever the config is
needed. The username is random, so every credential gets a different key.

What this buys: a database dump alone reveals no key (the hash of a 128-bit value cannot be
reversed); nothing secret is stored beside the hash. What it costs: anyone holding ENCRYPTION_KEY
can compute keys, which is no worse than storing them encrypted under that same key. Rotating
ENCRYPTION_KEY does not break existing credentials, because authentication checks the stored
hash, never the derivation.

SMTP AUTH (the SMTP edge) and the outbound API's Bearer key both call `authenticate`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..crypto import hash_key, key_matches
from ..models import Credential, Resource
from ..models.base import utcnow
from ..models.resource import DEPROVISIONED
from ..settings import Settings

ROTATION_GRACE = timedelta(hours=24)
_KEY_LABEL = b"cloudmailin credential key v1:"
# Compared against when a username is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = hash_key("not a key")


@dataclass(frozen=True)
class IssuedCredential:
    username: str
    key: str


def new_username() -> str:
    return secrets.token_hex(10)


def key_for(settings: Settings, username: str) -> str:
    """The key of the credential named `username` (see the module docstring for why it is derived)."""
    digest = hmac.new(
        settings.encryption_key.encode("ascii"), _KEY_LABEL + username.encode("utf-8"), hashlib.sha256
    )
    return digest.hexdigest()[:32]


def new_pair(settings: Settings) -> IssuedCredential:
    username = new_username()
    return IssuedCredential(username, key_for(settings, username))


def credential_values(pair: IssuedCredential) -> dict[str, str]:
    """The stored columns of a new credential: the key only as its hash."""
    return {"username": pair.username, "key_hash": hash_key(pair.key)}


def issue_credential(session: Session, settings: Settings, resource: Resource) -> IssuedCredential:
    pair = new_pair(settings)
    credential = Credential(**credential_values(pair))
    resource.credentials.append(credential)
    session.add(credential)
    return pair


def current_credential(resource: Resource) -> Credential | None:
    """The credential the config vars carry: the newest one that is neither revoked nor retiring."""
    live = [c for c in resource.credentials if c.revoked_at is None and c.expires_at is None]
    return max(live, key=lambda c: c.id or 0, default=None)


def current_pair(settings: Settings, resource: Resource) -> IssuedCredential | None:
    credential = current_credential(resource)
    if credential is None:
        return None
    return IssuedCredential(credential.username, key_for(settings, credential.username))


def rotate(
    session: Session,
    settings: Settings,
    resource: Resource,
    *,
    grace: timedelta = ROTATION_GRACE,
    now: datetime | None = None,
) -> IssuedCredential:
    """Issue a new credential; the old ones keep working for `grace` so running apps can switch over."""
    now = now or utcnow()
    for credential in resource.credentials:
        if credential.revoked_at is None and (
            credential.expires_at is None or credential.expires_at > now + grace
        ):
            credential.expires_at = now + grace
    return issue_credential(session, settings, resource)


def revoke_all(resource: Resource, *, now: datetime | None = None) -> None:
    now = now or utcnow()
    for credential in resource.credentials:
        if credential.revoked_at is None:
            credential.revoked_at = now


def authenticate(
    session: Session, username: str, key: str, *, now: datetime | None = None
) -> Resource | None:
    """The active resource whose credential is `username:key` (live or in its grace period), or None."""
    now = now or utcnow()
    if not _storable(username):
        # No username holds a NUL or a lone surrogate, and PostgreSQL refuses them as parameters;
        # the answer is the unknown username's, at its cost.
        key_matches(key, _DUMMY_HASH)
        return None
    rows = session.execute(
        select(Credential.key_hash, Resource)
        .join(Resource, Credential.resource_id == Resource.id)
        .where(
            Credential.username == username,
            Credential.revoked_at.is_(None),
            or_(Credential.expires_at.is_(None), Credential.expires_at > now),
            Resource.state != DEPROVISIONED,
        )
    ).all()
    if not rows:
        key_matches(key, _DUMMY_HASH)
        return None
    found: Resource | None = None
    for key_hash, resource in rows:
        if key_matches(key, key_hash):
            found = resource
    return found


def smtp_url(settings: Settings, credential: IssuedCredential) -> str:
    """Both parts are hex, so they need no escaping inside the URL."""
    return (
        f"smtp://{credential.username}:{credential.key}"
        f"@{settings.smtp_public_host}:{settings.smtp_public_port}?starttls=true"
    )


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
