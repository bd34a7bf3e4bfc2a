"""The submission listener (587/2525): the customer's app authenticates with CLOUDMAILIN_SMTP_URL.

STARTTLS comes first (nothing but EHLO/NOOP/STARTTLS/QUIT before it), then AUTH PLAIN or
LOGIN, checked by `credentials.authenticate` in a DB thread; MAIL without AUTH is refused with
530 5.7.0 (no open relay). Failed attempts are counted per client address, and past the limit AUTH
answers 454 4.7.0 until the window passes, which keeps key guessing slow without locking out a user
who mistyped once.

An authenticated session sends as the API does, with the same limits (`provider.outbound.limits`):
20 RCPT (452 4.5.3 for the next), 10 MB (552 5.3.4 at MAIL SIZE= or after DATA). After DATA the
message becomes an `Outgoing` (`from_smtp`: class and tags headers honoured and removed, Bcc
dropped, attachment names checked) off the event loop, and the process's `AcceptBatcher` stores
it with whatever else arrived meanwhile (services/accept_batcher.py, the API's too), in its own
thread. `250 Thanks! Queued as: <uuid>` is sent only after the commit, so
an outage (PostgreSQL down) is a 451 the client retries, never a 250 for mail that was not kept.
The delivery job is enqueued after the commit; if Redis does not take it, the message is still
queued in PostgreSQL and the delivery worker's poller finds it.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import time
from base64 import b64decode
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Session

from provider.errors import AuthThrottled, AuthUnavailable
from provider.outbound.errors import InvalidAddress, OutboundTooBig
from provider.outbound.limits import MAX_MESSAGE_BYTES, MAX_RECIPIENTS
from provider.outbound.outgoing import from_smtp
from provider.outbound.request import ADDR_SPEC
from provider.services.accept_batcher import AcceptBatcher
from provider.services.credentials import authenticate
from provider.services.sending import Submission, new_message_id
from provider.tasks import wake_delivery

from .context import EdgeContext
from .handlers import BaseHandler
from .protocol import EdgeSMTP
from .replies import RCPT_OK, queued, reply_for
from .transaction import SessionFacts, Transaction

log = logging.getLogger(__name__)

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


class SubmissionTransaction(Transaction):
    @property
    def size_limit(self) -> int:
        return MAX_MESSAGE_BYTES


class SubmissionHandler(BaseHandler):
    max_message_bytes = MAX_MESSAGE_BYTES
    max_recipients = MAX_RECIPIENTS

    def __init__(self, context: EdgeContext, limiter: AuthLimiter | None = None) -> None:
        self.context = context
        self.limiter = limiter or AuthLimiter()
        # A pool of its own: the edge's DB threads must never wait for the batcher's connection.
        settings = context.settings
        self.accepting = AcceptBatcher.for_settings(settings, wake_delivery(settings.redis_url))

    def offers_auth(self, server: SMTP) -> bool:
        return True  # aiosmtpd lists AUTH only once TLS is up (auth_require_tls)

    async def check_credentials(self, username: str, key: str) -> Identity | None:
        def check(session: Any) -> str | None:
            resource = authenticate(session, username, key)
            return resource.id if resource is not None else None

        resource_id = await self.context.in_db(check)
        return Identity(username, resource_id) if resource_id else None

    async def recipient(self, session: Session, transaction: Transaction, address: str) -> str:
        if not ADDR_SPEC.fullmatch(address):
            return InvalidAddress(f"Not a deliverable address: {address!r}").smtp_reply
        transaction.rcpt_tos.append(address)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, transaction: Transaction) -> str:
        if transaction.oversize:
            return OutboundTooBig(MAX_MESSAGE_BYTES).smtp_reply
        identity = session.auth_data
        assert isinstance(identity, Identity)  # aiosmtpd runs DATA only after AUTH (auth_required)
        data = transaction.content
        assert isinstance(data, bytes)
        transaction.content = transaction.original_content = None
        # The message is stored even if the client leaves right after the final dot: it may
        # have been committed already, and half-done work must not be cut short in any case.
        task = self.context.keep(
            asyncio.create_task(self._submit(identity, transaction.sender, list(transaction.rcpt_tos), data))
        )
        del data
        return await asyncio.shield(task)

    async def _submit(self, identity: Identity, sender: str, recipients: list[str], data: bytes) -> str:
        message_id = new_message_id()
        try:
            outgoing = await self.context.in_cpu(
                len(data), from_smtp, sender, recipients, data, str(message_id)
            )
            del data
            # AccountClosed if the add-on was deprovisioned since AUTH; a Redis failure after
            # the commit is logged, not raised (the poller finds the message).
            await asyncio.wrap_future(
                self.accepting.submit(Submission(identity.resource_id, outgoing, message_id))
            )
        except Exception as exc:
            reply = reply_for(exc)
            log.info("submission by %s refused: %s", identity.username, reply)
            return reply
        log.info(
            "queued %s from %s for %d recipients", message_id, identity.username, len(recipients)
        )
        return queued(message_id)


class SubmissionSMTP(EdgeSMTP):
    """AUTH PLAIN and LOGIN with the credential check off the event loop and rate limited."""

    def _create_envelope(self) -> SubmissionTransaction:
        return SubmissionTransaction()

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
            try:
                identity = await self.submission().check_credentials(username, key)
            except Exception:
                log.exception("could not check AUTH credentials from %s", self._client())
                return AuthResult(success=False, handled=False, message=AuthUnavailable().smtp_reply)
        if identity is None:
            self.submission().limiter.failed(self._client())
            log.info("failed AUTH from %s", self._client())
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=identity)
