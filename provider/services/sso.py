"""Checking Heroku's single sign-on fields (spec/heroku.md, SSO).

Heroku signs a login with the manifest's `sso_salt` in up to three ways. The strongest token the
form carries is the one checked: a user-scoped token also binds the user id and email, so when it
is present a correct weaker token beside it must not be enough. Tokens are compared in constant
time, and only logins from the last five minutes (with a minute of clock skew ahead) are accepted,
so a leaked launch URL stops working quickly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from ..crypto import same_secret

MAX_AGE_SECONDS = 5 * 60
MAX_FUTURE_SKEW_SECONDS = 60


class SsoRefused(Exception):
    """The login is not genuine or not current; the message is safe to show."""


@dataclass(frozen=True)
class SsoLogin:
    resource_id: str
    email: str
    user_id: str
    app: str
    nav_data: str | None


def resource_token(resource_id: str, salt: str, timestamp: str) -> str:
    return hashlib.sha1(f"{resource_id}:{salt}:{timestamp}".encode()).hexdigest()  # noqa: S324 (Heroku's scheme)


def user_scoped_token(resource_id: str, salt: str, timestamp: str, user_id: str, email: str) -> str:
    return hashlib.sha256(f"{resource_id}:{salt}:{timestamp}:{user_id}:{email}".encode()).hexdigest()


def _check_timestamp(raw: str, now: float) -> None:
    try:
        timestamp = int(raw)
    except ValueError:
        raise SsoRefused("The sign-in link has no valid timestamp.") from None
    if now - timestamp > MAX_AGE_SECONDS:
        raise SsoRefused("The sign-in link has expired; open the add-on from Heroku again.")
    if timestamp - now > MAX_FUTURE_SKEW_SECONDS:
        raise SsoRefused("The sign-in link is dated in the future; check the clocks and try again.")


def verify_login(fields: Mapping[str, str], salt: str, now: float) -> SsoLogin:
    """Return the login the fields prove, or raise `SsoRefused`."""
    if not salt:
        raise SsoRefused("Single sign-on is not configured on this server.")
    timestamp = fields.get("timestamp", "")
    email = fields.get("email", "")
    user_id = fields.get("user_id", "")
    resource_id = fields.get("resource_id", "")
    if resource_id and fields.get("user_scoped_resource_token"):
        given = fields["user_scoped_resource_token"]
        expected = user_scoped_token(resource_id, salt, timestamp, user_id, email)
    elif resource_id and fields.get("resource_token"):
        given = fields["resource_token"]
        expected = resource_token(resource_id, salt, timestamp)
    elif fields.get("id") and fields.get("token"):
        resource_id = fields["id"]
        given = fields["token"]
        expected = resource_token(resource_id, salt, timestamp)
    else:
        raise SsoRefused("The sign-in request carries no token.")
    if not same_secret(given.lower(), expected):
        raise SsoRefused("The sign-in token is not valid.")
    _check_timestamp(timestamp, now)
    return SsoLogin(
        resource_id=resource_id,
        email=email,
        user_id=user_id,
        app=fields.get("app", "") or fields.get("context_app", ""),
        nav_data=fields.get("nav-data"),
    )
