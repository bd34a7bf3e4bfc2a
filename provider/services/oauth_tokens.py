"""A resource's Heroku OAuth tokens: exchanging the provisioning grant, refreshing, forgetting.

One token set per resource, kept on the `Resource` row and encrypted at rest (DESIGN.md decision
4). The grant is single-use and lives five minutes, so it is exchanged once, before its
`expires_at`, and cleared afterwards. Callers hold the resource's row lock (see `lock_resource`)
across an exchange or refresh and commit right after it: two workers exchanging one grant would
see the second fail, and two refreshing at once would each store a different access token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.crypto import box_for
from provider.heroku_platform import (
    PermanentPlatformError,
    TokenSet,
    exchange_grant_code,
    refresh_tokens,
)
from provider.models import Resource
from provider.settings import Settings

# Refresh when the access token has less than this left, so a call never starts with a token
# that expires on the way.
REFRESH_MARGIN = timedelta(minutes=1)


class GrantUnavailable(PermanentPlatformError):
    """There is no grant to exchange (never sent, or already used) or it expired unexchanged."""


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def lock_resource(session: Session, resource_id: str, *, skip_locked: bool = False) -> Resource | None:
    """Load the resource with its row locked until the caller commits or rolls back. With
    `skip_locked`, a row someone else holds reads as None instead of waiting for them."""
    query = (
        select(Resource)
        .where(Resource.id == resource_id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).one_or_none()


def has_tokens(resource: Resource) -> bool:
    return resource.access_token_enc is not None and resource.refresh_token_enc is not None


def store_tokens(settings: Settings, resource: Resource, tokens: TokenSet) -> None:
    box = box_for(settings)
    resource.access_token_enc = box.encrypt(tokens.access_token)
    resource.refresh_token_enc = box.encrypt(tokens.refresh_token)
    resource.access_token_expires_at = tokens.expires_at


def exchange_grant(
    session: Session, settings: Settings, resource: Resource, *, now: datetime | None = None
) -> bool:
    """Swap the stored grant for tokens. Returns False when tokens are already there (a repeated
    job); raises `GrantUnavailable` when there is nothing left to exchange, and the platform
    errors of `exchange_grant_code` otherwise. The caller commits."""
    if has_tokens(resource):
        return False
    if resource.oauth_grant_enc is None:
        raise GrantUnavailable(f"resource {resource.id} has no OAuth grant to exchange")
    expires_at = resource.oauth_grant_expires_at
    if expires_at is not None and _now(now) >= expires_at:
        raise GrantUnavailable(
            f"the OAuth grant of resource {resource.id} expired at {expires_at.isoformat()}"
        )
    code = box_for(settings).decrypt(resource.oauth_grant_enc)
    tokens = exchange_grant_code(settings, code)
    store_tokens(settings, resource, tokens)
    resource.oauth_grant_enc = None
    resource.oauth_grant_expires_at = None
    session.flush()
    return True


def needs_refresh(resource: Resource, *, now: datetime | None = None) -> bool:
    expires_at = resource.access_token_expires_at
    return expires_at is None or expires_at - _now(now) <= REFRESH_MARGIN


def access_token(
    session: Session, settings: Settings, resource: Resource, *, now: datetime | None = None
) -> str:
    """A usable access token, refreshed first when it has less than a minute left.
    Raises `GrantUnavailable` when the resource has no tokens. The caller commits."""
    access_enc, refresh_enc = resource.access_token_enc, resource.refresh_token_enc
    if access_enc is None or refresh_enc is None:
        raise GrantUnavailable(f"resource {resource.id} holds no OAuth tokens")
    box = box_for(settings)
    if not needs_refresh(resource, now=now):
        return box.decrypt(access_enc)
    tokens = refresh_tokens(settings, box.decrypt(refresh_enc))
    store_tokens(settings, resource, tokens)
    session.flush()
    return tokens.access_token


def forget_tokens(resource: Resource) -> None:
    """On deprovision Heroku revokes the tokens; keeping them would only keep a secret around."""
    resource.oauth_grant_enc = None
    resource.oauth_grant_expires_at = None
    resource.access_token_enc = None
    resource.refresh_token_enc = None
    resource.access_token_expires_at = None
