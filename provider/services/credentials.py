"""SMTP and API credentials: the USER:KEY pair in CLOUDMAILIN_SMTP_URL.

Authentication checks only a SHA-256 hash of the key (DESIGN.md decision 4). Yet Heroku may ask
for the same config twice (a repeated provision POST must answer the same config) and the async
provisioning job sends the config after the key was issued, so the key must be recoverable. Each
credential's key is random and kept beside its hash encrypted (`key_enc`, Fernet under
ENCRYPTION_KEY), and the config is answered by decrypting it.

Why not derive the key (HMAC of the username under some deployment secret, as this module did
until migration 0003)? A derived key is only as stable as its secret. Derived from
ENCRYPTION_KEY, rotating that key changed every repeated answer. Derived from a dedicated secret,
that secret could never be rotated, and it alone (no database needed) yields the key of every
username, and usernames are not secret (they travel in config vars and SMTP AUTH). A stored key
rotates with everything else (MultiFernet decrypts it under the old key until
`flask secrets rotate` re-encrypts it), the hash that authenticates never changes, and reading
keys takes both the database and ENCRYPTION_KEY, the bar every other stored secret already has.
Retired and revoked credentials keep only their hash: no answer will carry their key again.

SMTP AUTH (the SMTP edge) and the outbound API's Bearer key both call `authenticate`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..crypto import box_for, hash_key, key_matches, new_api_key
from ..models import Credential, Resource
from ..models.base import utcnow
from ..settings import Settings

# Compared against when a username is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = hash_key("not a key")


@dataclass(frozen=True)
class IssuedCredential:
    username: str
    key: str


def new_username() -> str:
    return secrets.token_hex(10)


def new_pair() -> IssuedCredential:
    return IssuedCredential(new_username(), new_api_key())


def credential_values(settings: Settings, pair: IssuedCredential) -> dict[str, str | bytes]:
    """The stored columns of a new credential: the key as its hash (to authenticate) and
    encrypted (to answer the same config again)."""
    return {
        "username": pair.username,
        "key_hash": hash_key(pair.key),
        "key_enc": box_for(settings).encrypt(pair.key),
    }


def issue_credential(session: Session, settings: Settings, resource: Resource) -> IssuedCredential:
    pair = new_pair()
    credential = Credential(**credential_values(settings, pair))
    resource.credentials.append(credential)
    session.add(credential)
    return pair


def current_credential(resource: Resource) -> Credential | None:
    """The credential the config vars carry: the newest one that is neither revoked nor retiring.
    A live credential without a stored key (one migration 0003 could not recover, see there) is
    passed over, so the config gets a new credential while the old one keeps authenticating."""
    live = [
        c
        for c in resource.credentials
        if c.revoked_at is None and c.expires_at is None and c.key_enc is not None
    ]
    return max(live, key=lambda c: c.id or 0, default=None)


def current_pair(settings: Settings, resource: Resource) -> IssuedCredential | None:
    """Raises crypto.DecryptionError when no configured key decrypts the stored key (an old
    ENCRYPTION_KEY removed before `flask secrets rotate` re-encrypted it)."""
    credential = current_credential(resource)
    if credential is None or credential.key_enc is None:
        return None
    return IssuedCredential(credential.username, box_for(settings).decrypt(credential.key_enc))


ROTATION_GRACE = timedelta(hours=24)
"""How long a rotated-out key keeps working, so a running app can pick up its new config."""


def rotate(
    session: Session,
    settings: Settings,
    resource: Resource,
    *,
    grace: timedelta = ROTATION_GRACE,
    now: datetime | None = None,
) -> IssuedCredential:
    """Issue a new credential; the old ones keep working for `grace` (their keys are no longer
    kept: only a repeated provision answer needs them, and that answers the new one)."""
    now = now or utcnow()
    for credential in resource.credentials:
        if credential.revoked_at is None and (
            credential.expires_at is None or credential.expires_at > now + grace
        ):
            credential.expires_at = now + grace
            credential.key_enc = None
    return issue_credential(session, settings, resource)


def revoke_all(resource: Resource, *, now: datetime | None = None) -> None:
    now = now or utcnow()
    for credential in resource.credentials:
        if credential.revoked_at is None:
            credential.revoked_at = now
        credential.key_enc = None


def authenticate(
    session: Session, username: str, key: str, *, now: datetime | None = None
) -> Resource | None:
    """The active resource whose credential is `username:key` (live or in its grace period), or None."""
    found = _find(session, username, key, now or utcnow())
    return found[0] if found else None


def _find(
    session: Session, username: str, key: str, now: datetime
) -> tuple[Resource, datetime | None] | None:
    """The resource and when the matching credential stops working (None: while not rotated)."""
    if not _storable(username):
        # No username holds a NUL or a lone surrogate, and PostgreSQL refuses them as parameters;
        # the answer is the unknown username's, at its cost.
        key_matches(key, _DUMMY_HASH)
        return None
    rows = session.execute(
        select(Credential.key_hash, Credential.expires_at, Resource)
        .join(Resource, Credential.resource_id == Resource.id)
        .where(
            Credential.username == username,
            Credential.revoked_at.is_(None),
            or_(Credential.expires_at.is_(None), Credential.expires_at > now),
            Resource.active,
        )
    ).all()
    if not rows:
        key_matches(key, _DUMMY_HASH)
        return None
    found: tuple[Resource, datetime | None] | None = None
    for key_hash, expires_at, resource in rows:
        if key_matches(key, key_hash):
            found = (resource, expires_at)
    return found


@dataclass(frozen=True)
class Verified:
    """A username:key pair checked against the database, remembered for a few seconds."""

    resource_id: str
    key_hash: str
    until: datetime


CACHE_SECONDS = 10.0
CACHE_SIZE = 10_000


class CredentialCache:
    """`authenticate` for the hot path of sending, remembering for CACHE_SECONDS which resource a
    username:key pair belongs to, in this process.

    Checking a key took a query joining credentials and resources on every API message (about a
    tenth of the web's CPU per message). A remembered pair is still compared in constant time
    (`key_matches` against the hash that was verified), and a wrong key always goes to the
    database. What the cache cannot see for up to CACHE_SECONDS is a credential revoked in the
    meantime: revocation only happens at deprovisioning, and `sending.accept` reads the resource's
    state afresh (AccountClosed), so a deprovisioned resource sends nothing either way; a rotated
    key keeps its 24 hours of grace anyway, and an entry never outlives its credential's expiry.
    """

    def __init__(self, seconds: float = CACHE_SECONDS, size: int = CACHE_SIZE) -> None:
        self.period = timedelta(seconds=seconds)
        self.size = size
        self._verified: dict[str, Verified] = {}

    def resource_id(
        self, session: Session, username: str, key: str, *, now: datetime | None = None
    ) -> str | None:
        now = now or utcnow()
        known = self._verified.get(username)
        if known is not None and known.until > now and key_matches(key, known.key_hash):
            return known.resource_id
        found = _find(session, username, key, now)
        if found is None:
            return None
        resource, expires_at = found
        until = now + self.period if expires_at is None else min(now + self.period, expires_at)
        self._verified.pop(username, None)
        if len(self._verified) >= self.size:
            del self._verified[next(iter(self._verified))]  # the oldest: memory stays bounded
        self._verified[username] = Verified(resource.id, hash_key(key), until)
        return resource.id

    def forget(self, username: str) -> None:
        self._verified.pop(username, None)


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
