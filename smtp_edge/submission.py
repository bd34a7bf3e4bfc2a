"""The submission listener (587/2525): the customer's app authenticates with CLOUDMAILIN_SMTP_URL.

STARTTLS comes first (nothing but EHLO/NOOP/STARTTLS/QUIT before it), then AUTH PLAIN or
LOGIN, checked by `credentials.authenticate` in a DB thread; MAIL without AUTH is refused with
530 5.7.0. Failed attempts are counted per client address, and past the limit AUTH answers
454 4.7.0 until the window passes, which keeps key guessing slow without locking out a user
who mistyped once.

Outbound delivery is not built yet, so an authenticated session is told so plainly at DATA
(554 5.7.0): a permanent refusal, because retrying will not help until the feature exists.
"""

from __future__ import annotations

import binascii
import logging
import time
from base64 import b64decode
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Session

from provider.errors import AuthThrottled, SendingNotEnabled
from provider.plans import MB
from provider.services.credentials import authenticate

from .context import EdgeContext
from .handlers import BaseHandler
from .protocol import EdgeSMTP
from .transaction import SessionFacts, Transaction

log = logging.getLogger(__name__)

MAX_OUTBOUND_BYTES = 10 * MB
MAX_OUTBOUND_RECIPIENTS = 20
AUTH_FAILURES_ALLOWED = 5
AUTH_WINDOW = 300.0
TRACKED_CLIENTS = 10_000


@dataclass(frozen=True)
class Identity:
    username: str
    resource_id: str


class AuthLimiter:
    """Failed AUTH attempts per client address in a sliding window, in memory (per process)."""

    def __init__(
        self,
        allowed: int = AUTH_FAILURES_ALLOWED,
        window: float = AUTH_WINDOW,
        tracked: int = TRACKED_CLIENTS,
    ) -> None:
        self.allowed = allowed
        self.window = window
        self.tracked = tracked
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
        return failures

    def blocked(self, client: str) -> bool:
        return len(self._recent(client, time.monotonic())) >= self.allowed

    def failed(self, client: str) -> None:
        now = time.monotonic()
        failures = self._recent(client, now)
        failures.append(now)
        self._failures[client] = failures
        if len(self._failures) > self.tracked:
            # Forget the client that failed longest ago; memory stays bounded under a flood.
            del self._failures[next(iter(self._failures))]


class SubmissionHandler(BaseHandler):
    max_message_bytes = MAX_OUTBOUND_BYTES
    max_recipients = MAX_OUTBOUND_RECIPIENTS

    def __init__(self, context: EdgeContext, limiter: AuthLimiter | None = None) -> None:
        self.context = context
        self.limiter = limiter or AuthLimiter()

    def offers_auth(self, server: SMTP) -> bool:
        return True  # aiosmtpd lists AUTH only once TLS is up (auth_require_tls)

    async def check_credentials(self, username: str, key: str) -> Identity | None:
        def check(session: Any) -> str | None:
            resource = authenticate(session, username, key)
            return resource.id if resource is not None else None

        resource_id = await self.context.in_db(check)
        return Identity(username, resource_id) if resource_id else None

    async def refuse_data(
        self, server: SMTP, session: Session, envelope: Transaction
    ) -> str | None:
        return SendingNotEnabled().smtp_reply


class SubmissionSMTP(EdgeSMTP):
    """AUTH PLAIN and LOGIN with the credential check off the event loop and rate limited."""

    def submission(self) -> SubmissionHandler:
        handler = self.event_handler
        assert isinstance(handler, SubmissionHandler)
        return handler

    def _client(self) -> str:
        assert self.session is not None
        return SessionFacts.of(self.session).remote_ip

    async def auth_PLAIN(self, _: SMTP, args: list[str]) -> AuthResult:
        if self.submission().limiter.blocked(self._client()):
            return AuthResult(success=False, handled=False, message=AuthThrottled().smtp_reply)
        blob = await self.challenge_auth("") if len(args) == 1 else await self._decode(args[1])
        if not isinstance(blob, bytes):
            return AuthResult(success=False)  # the reply has been sent
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False)
        return await self._verify(parts[1], parts[2])

    async def auth_LOGIN(self, _: SMTP, args: list[str]) -> AuthResult:
        if self.submission().limiter.blocked(self._client()):
            return AuthResult(success=False, handled=False, message=AuthThrottled().smtp_reply)
        login: object
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
        else:
            login = await self._decode(args[1])
        if not isinstance(login, bytes):
            return AuthResult(success=False)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False)
        return await self._verify(login, password)

    async def _decode(self, text: str) -> bytes | None:
        try:
            return b64decode(text.encode("ascii", "replace"), validate=True)
        except (binascii.Error, ValueError):
            await self.push("501 5.5.2 Can't decode base64")
            return None

    async def _verify(self, login: bytes, password: bytes) -> AuthResult:
        identity: Identity | None = None
        try:
            username, key = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            identity = await self.submission().check_credentials(username, key)
        if identity is None:
            self.submission().limiter.failed(self._client())
            log.info("failed AUTH from %s", self._client())
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=identity)
