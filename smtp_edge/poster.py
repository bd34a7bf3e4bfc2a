"""The POST to the app's target; the target's verdict is `services.target_answers.verdict`
(spec/inbound.md, the status table), which the dashboard's test message applies too.

One aiohttp ClientSession per process, so connections to a target are pooled across SMTP
sessions. The POST is made once: the service never retries it (the sending MTA does, after a
4xx reply). Redirects are followed here rather than by aiohttp, because aiohttp (like browsers)
turns a POST into a GET after 301/302/303, while the spec re-POSTs the same body every time.
Every request of a delivery carries its X-CloudMailin-Delivery-Id (provider/inbound/delivery_id.py),
so a target can drop the duplicate a sender's retry brings when the edge died before replying.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from provider.errors import (
    DomainError,
    TargetTimeout,
    TargetUnreachable,
    TooManyRedirects,
)
from provider.inbound.delivery_id import HEADER as DELIVERY_ID_HEADER
from provider.inbound.signature import HEADER as SIGNATURE_HEADER
from provider.models.inbound_message import CLIENT_TIMEOUT, UNREACHABLE
from provider.services.history import RESPONSE_BODY_LIMIT
from provider.services.target_answers import MAX_REDIRECTS, REDIRECTS, USER_AGENT, decode_body, verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostResult:
    status: str  # the HTTP code as text, or client_timeout / unreachable
    http_status: int | None
    error: DomainError | None  # None: the target accepted the message
    response_body: str | None  # first 2 KB of a failed response
    target_ms: int

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Target:
    url: str  # without credentials
    authorization: str | None
    origin: tuple[str, str, int | None]


def split_credentials(url: str) -> _Target:
    """Move `user:password@` out of the URL into a Basic Authorization header, percent-decoded."""
    parts = urlsplit(url)
    hostport = parts.netloc.rpartition("@")[2]
    origin = (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port)
    if "@" not in parts.netloc:
        return _Target(url, None, origin)
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return _Target(urlunsplit(parts._replace(netloc=hostport)), f"Basic {token}", origin)


class TargetPoster:
    def __init__(self, http: aiohttp.ClientSession, *, timeout: float) -> None:
        self._http = http
        self._timeout = timeout

    async def post(
        self,
        url: str,
        content_type: str,
        body: bytes,
        signature: str | None,
        delivery_id: str | None = None,
    ) -> PostResult:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                status, error, excerpt = await self._exchange(
                    url, content_type, body, signature, delivery_id
                )
        except TimeoutError:
            status, error, excerpt = CLIENT_TIMEOUT, TargetTimeout(self._timeout), None
        except aiohttp.ClientError as exc:
            status, error, excerpt = UNREACHABLE, TargetUnreachable(_describe(exc)), None
        except ValueError as exc:  # yarl / aiohttp reject a URL they cannot request
            log.info("target URL cannot be requested: %s", exc)
            status, error, excerpt = UNREACHABLE, TargetUnreachable("invalid URL"), None
        elapsed = int((time.monotonic() - started) * 1000)
        http_status = int(status) if status.isdigit() else None
        return PostResult(status, http_status, error, excerpt, elapsed)

    async def _exchange(
        self,
        url: str,
        content_type: str,
        body: bytes,
        signature: str | None,
        delivery_id: str | None,
    ) -> tuple[str, DomainError | None, str | None]:
        first = split_credentials(url)
        target = first
        for followed in range(MAX_REDIRECTS + 1):
            headers = {"User-Agent": USER_AGENT, "Content-Type": content_type}
            if signature:
                headers[SIGNATURE_HEADER] = signature
            if delivery_id:
                headers[DELIVERY_ID_HEADER] = delivery_id
            if target.authorization:
                headers["Authorization"] = target.authorization
            async with self._http.post(
                URL(target.url), data=body, headers=headers, allow_redirects=False
            ) as response:
                code = response.status
                location = response.headers.get("Location")
                if code in REDIRECTS and location:
                    if followed == MAX_REDIRECTS:
                        return str(code), TooManyRedirects(code, MAX_REDIRECTS), None
                    target = self._redirect(first, target, location)
                    continue
                raw = await _read_prefix(response)  # also lets the connection go back to the pool
                error = verdict(code, response.content_type, response.charset, raw)
                if error is None:
                    return str(code), None, None
                return str(code), error, decode_body(raw, response.charset)
        raise AssertionError("unreachable: the loop returns on its last pass")

    @staticmethod
    def _redirect(first: _Target, current: _Target, location: str) -> _Target:
        """Credentials go only where the customer put them: the origin of the URL that carried
        them, or a redirect URL that carries its own."""
        nxt = split_credentials(urljoin(current.url, location))
        if urlsplit(nxt.url).scheme.lower() not in ("http", "https"):
            raise aiohttp.InvalidURL(nxt.url)
        if nxt.authorization is None and nxt.origin == first.origin:
            return _Target(nxt.url, first.authorization, nxt.origin)
        return nxt


async def _read_prefix(response: aiohttp.ClientResponse) -> bytes:
    """At most the first 2 KB of the body: a huge error page is never read whole."""
    chunks: list[bytes] = []
    remaining = RESPONSE_BODY_LIMIT
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "connection closed before the response"
    return "connection error"
