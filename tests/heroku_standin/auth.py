"""Who is calling: the CLI's user (the API key) or a provider holding an add-on's access token."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Any

from flask import request

from tests.heroku_standin.config import StandinConfig
from tests.heroku_standin.errors import PlatformError
from tests.heroku_standin.oauth import token_for
from tests.heroku_standin.state import Store

PLATFORM_MEDIA_TYPE = "application/vnd.heroku+json"


@dataclass(frozen=True)
class Principal:
    is_user: bool
    addon_id: str | None = None


def _presented_secret() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        # `heroku` with a netrc entry sends Basic with the key as the password.
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def principal(config: StandinConfig, store: Store) -> Principal:
    secret = _presented_secret()
    if secret is None:
        raise PlatformError(401, "unauthorized", "Invalid credentials provided.")
    if hmac.compare_digest(secret.encode(), config.api_key.encode()):
        return Principal(is_user=True)
    tokens = token_for(store, secret)
    if tokens is None:
        raise PlatformError(401, "unauthorized", "Invalid credentials provided.")
    return Principal(is_user=False, addon_id=tokens.addon_id)


def require_user(config: StandinConfig, store: Store) -> None:
    if not principal(config, store).is_user:
        raise PlatformError(403, "forbidden", "An add-on token cannot do this.")


def require_platform_accept() -> None:
    """Heroku's API wants its versioned media type; the provider must ask for it."""
    accept = request.headers.get("Accept", "")
    if PLATFORM_MEDIA_TYPE not in accept or "version=3" not in accept:
        raise PlatformError(
            400,
            "bad_request",
            "Please specify a version along with Heroku's API MIME type. "
            "For example, `Accept: application/vnd.heroku+json; version=3`.",
        )


def json_object() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise PlatformError(400, "bad_request", "The request body must be a JSON object.")
    return body
