"""The provider's client of Heroku: the OAuth grant exchange and refresh, and the platform API.

Both base URLs come from settings (DESIGN.md decision 5), so tests and `make run` point them at the
local stand-in. Every failure leaves this module as one of two named errors, because the only
decision a caller makes is whether trying again later can help: `TemporaryPlatformError`
(5xx, 429, connection failures, timeouts; carries Retry-After when Heroku sent one) or
`PermanentPlatformError` (any other 4xx, an answer that is not what the API promises).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from .settings import Settings

USER_AGENT = "cloudmailin-addon/0.1 (Heroku add-on cloudmailin)"
ACCEPT = "application/vnd.heroku+json; version=3"
# (connect, read): a job must not sit on a dead peer; Heroku answers these calls in well under 1 s.
TIMEOUT = (3.05, 10.0)


class PlatformError(Exception):
    """A call to Heroku failed; `status` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None, error_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id


class TemporaryPlatformError(PlatformError):
    """Trying again later can succeed; `retry_after` is Heroku's hint in seconds, if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, error_id=error_id)
        self.retry_after = retry_after


class PermanentPlatformError(PlatformError):
    """The same request will fail again: bad grant, unknown add-on, refused credentials."""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_at: datetime


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date; anything else is no hint."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_body(response: requests.Response) -> tuple[str | None, str]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error_id = data.get("id") or data.get("error")
        message = data.get("message") or data.get("error_description") or ""
        return (str(error_id) if error_id else None), str(message)
    return None, ""


def platform_error(response: requests.Response, what: str) -> PlatformError:
    """Classify a failed answer: 5xx, 429 and 408 are worth retrying, other 4xx are not."""
    status = response.status_code
    error_id, message = _error_body(response)
    text = f"{what}: HTTP {status}" + (f" {error_id}" if error_id else "")
    text += f": {message}" if message else ""
    if status >= 500 or status in (408, 429):
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return TemporaryPlatformError(text, status=status, error_id=error_id, retry_after=retry_after)
    return PermanentPlatformError(text, status=status, error_id=error_id)


def transport_error(exc: requests.RequestException, what: str) -> TemporaryPlatformError:
    """No usable answer at all (refused, reset, timed out): the peer may be back later."""
    return TemporaryPlatformError(f"{what}: {type(exc).__name__}")


def new_http_session() -> requests.Session:
    """A keep-alive session that ignores proxy variables: the URLs are ours, from settings."""
    http = requests.Session()
    http.trust_env = False
    http.headers["User-Agent"] = USER_AGENT
    return http


# -- OAuth ---------------------------------------------------------------------------------------


_AUTH_METHOD = "heroku_client_secret"  # a client auth method name


def _client_secret_only(client: Any, method: str, uri: str, headers: dict[str, str], body: str) -> Any:
    """Heroku's token endpoint takes `client_secret` in the form and no client id."""
    from authlib.common.urls import add_params_to_qs

    body = add_params_to_qs(body or "", [("client_secret", client.client_secret or "")])
    if "Content-Length" in headers:
        headers["Content-Length"] = str(len(body))
    return uri, headers, body


def _classify_token_answer(what: str) -> Any:
    """Judge the token endpoint's status before authlib parses the body: a 429 or 503 page is
    worth retrying whatever it says, and 4xx answers carry OAuth's `error` or Heroku's `id`."""

    def hook(response: requests.Response) -> requests.Response:
        if not 200 <= response.status_code < 300:
            raise platform_error(response, what)
        return response

    return hook


def _oauth_session(settings: Settings, what: str) -> OAuth2Session:
    oauth = OAuth2Session(
        client_secret=settings.oauth_client_secret,
        token_endpoint=f"{settings.heroku_id_url}/oauth/token",
        token_endpoint_auth_method=_AUTH_METHOD,
    )
    oauth.register_client_auth_method((_AUTH_METHOD, _client_secret_only))
    for hook_type in ("access_token_response", "refresh_token_response"):
        oauth.register_compliance_hook(hook_type, _classify_token_answer(what))
    oauth.trust_env = False
    oauth.headers["User-Agent"] = USER_AGENT
    return oauth


def _token_set(token: dict[str, Any], now: datetime, what: str) -> TokenSet:
    access = token.get("access_token")
    refresh = token.get("refresh_token")
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise PermanentPlatformError(f"{what}: the token answer lacks access_token or refresh_token")
    try:
        lifetime = int(token.get("expires_in") or 0)
    except (TypeError, ValueError):
        lifetime = 0
    # No stated lifetime: treat the token as short-lived so it is refreshed on next use.
    return TokenSet(access, refresh, now + timedelta(seconds=max(lifetime, 0)))


def _token_call(settings: Settings, what: str, **form: str) -> TokenSet:
    now = datetime.now(UTC)
    oauth = _oauth_session(settings, what)
    try:
        if form.get("grant_type") == "refresh_token":
            token = oauth.refresh_token(refresh_token=form["refresh_token"], timeout=TIMEOUT)
        else:
            token = oauth.fetch_token(grant_type="authorization_code", code=form["code"], timeout=TIMEOUT)
    except OAuthError as exc:
        raise PermanentPlatformError(f"{what}: {exc.error}", error_id=exc.error) from exc
    except requests.RequestException as exc:
        raise transport_error(exc, what) from exc
    except ValueError as exc:
        raise PermanentPlatformError(f"{what}: the token endpoint did not answer JSON") from exc
    finally:
        oauth.close()
    return _token_set(dict(token), now, what)


def exchange_grant_code(settings: Settings, code: str) -> TokenSet:
    """`grant_type=authorization_code`: the grant is single-use, so a retry after success fails."""
    return _token_call(settings, "OAuth grant exchange", grant_type="authorization_code", code=code)


def refresh_tokens(settings: Settings, refresh_token: str) -> TokenSet:
    return _token_call(
        settings, "OAuth token refresh", grant_type="refresh_token", refresh_token=refresh_token
    )


# -- platform API --------------------------------------------------------------------------------


class PlatformAPI:
    """The add-on's own slice of the platform API, authorised by one resource's access token."""

    def __init__(
        self,
        settings: Settings,
        access_token: str,
        http: requests.Session | None = None,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        self.base_url = settings.heroku_api_url
        self.access_token = access_token
        self.http = http or new_http_session()
        self.timeout = timeout

    def _call(self, method: str, path: str, what: str, json: Any = None) -> Any:
        headers = {"Accept": ACCEPT, "Authorization": f"Bearer {self.access_token}", "User-Agent": USER_AGENT}
        try:
            response = self.http.request(
                method, self.base_url + path, json=json, headers=headers, timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error(exc, what) from exc
        if not 200 <= response.status_code < 300:
            raise platform_error(response, what)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise PermanentPlatformError(
                f"{what}: the answer is not JSON", status=response.status_code
            ) from exc

    @staticmethod
    def _id(value: str) -> str:
        return quote(value, safe="")

    def update_config(self, addon_id: str, config: dict[str, str]) -> Any:
        body = {"config": [{"name": name, "value": value} for name, value in config.items()]}
        return self._call("PATCH", f"/addons/{self._id(addon_id)}/config", "PATCH add-on config", body)

    def provision(self, addon_id: str) -> Any:
        return self._call("POST", f"/addons/{self._id(addon_id)}/actions/provision", "provision action")

    def deprovision(self, addon_id: str) -> Any:
        return self._call("POST", f"/addons/{self._id(addon_id)}/actions/deprovision", "deprovision action")
