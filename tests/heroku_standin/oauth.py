"""Heroku's OAuth side of add-on provisioning: the grant sent with the provision call, its
exchange at `POST /oauth/token`, refreshes, and the bearer tokens the platform API accepts.

Grants are single-use and expire (5 minutes); access tokens expire (8 hours) and are bound to the
one add-on they were issued for."""

from __future__ import annotations

import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Any

from tests.heroku_standin.config import StandinConfig
from tests.heroku_standin.errors import PlatformError
from tests.heroku_standin.state import Grant, Store, TokenSet


def issue_grant(store: Store, config: StandinConfig, addon_id: str) -> Grant:
    with store.lock:
        grant = Grant(
            code=str(uuid.uuid4()),
            addon_id=addon_id,
            expires_at=store.clock() + timedelta(seconds=config.grant_lifetime_seconds),
        )
        store.grants[grant.code] = grant
        return grant


def _oauth_error(status: int, error: str, message: str) -> PlatformError:
    """Heroku's `{id, message}` plus RFC 6749's `error`, so OAuth client libraries see it too."""
    error_id = "unauthorized" if status == 401 else "bad_request"
    return PlatformError(status, error_id, message, error=error, error_description=message)


def _check_client(config: StandinConfig, client_secret: str | None) -> None:
    if not client_secret or not hmac.compare_digest(
        client_secret.encode(), config.oauth_client_secret.encode()
    ):
        raise _oauth_error(401, "invalid_client", "Invalid OAuth client secret.")


def _new_token_set(store: Store, config: StandinConfig, addon_id: str, refresh: str) -> TokenSet:
    tokens = TokenSet(
        access_token=f"HRKU-standin-{secrets.token_hex(16)}",
        refresh_token=refresh,
        addon_id=addon_id,
        expires_at=store.clock() + timedelta(seconds=config.access_token_lifetime_seconds),
    )
    store.tokens[tokens.access_token] = tokens
    store.refresh_tokens[tokens.refresh_token] = tokens
    return tokens


def exchange(store: Store, config: StandinConfig, form: dict[str, str]) -> dict[str, Any]:
    """Answer `POST /oauth/token` for both grant types."""
    _check_client(config, form.get("client_secret"))
    grant_type = form.get("grant_type")
    with store.lock:
        if grant_type == "authorization_code":
            grant = store.grants.get(form.get("code") or "")
            if grant is None or grant.used:
                raise _oauth_error(400, "invalid_grant", "The grant code is unknown or used.")
            if store.clock() >= grant.expires_at:
                raise _oauth_error(400, "invalid_grant", "The grant code has expired.")
            grant.used = True
            tokens = _new_token_set(store, config, grant.addon_id, secrets.token_hex(20))
        elif grant_type == "refresh_token":
            old = store.refresh_tokens.get(form.get("refresh_token") or "")
            if old is None:
                raise _oauth_error(400, "invalid_grant", "The refresh token is unknown.")
            tokens = _new_token_set(store, config, old.addon_id, old.refresh_token)
        else:
            raise _oauth_error(
                400,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token.",
            )
        store.notify()
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_in": config.access_token_lifetime_seconds,
        "token_type": "Bearer",
        "user_id": config.user_id,
        "session_nonce": None,
    }


def token_for(store: Store, bearer: str) -> TokenSet | None:
    """The live token set behind a bearer token, if any."""
    with store.lock:
        tokens = store.tokens.get(bearer)
        if tokens is None or store.clock() >= tokens.expires_at:
            return None
        return tokens
