"""aiosmtpd's SMTP protocol, adjusted where the edge needs other behaviour.

- DATA is read by `data.read_data` (only CRLF.CRLF ends it, long lines kept, nothing buffered
  past the transaction's size limit, the idle timer kept alive while bytes flow) instead of
  aiosmtpd's reader, which refuses lines over 1000 bytes and replies 552 without an enhanced
  status.
- Each transaction is a `Transaction` (route, SPF check); ending one cancels its SPF check.
- Sessions register with the server as they connect (`on_open`), which may refuse them (the
  caps of `slots.Slots`), and it shuts them down gracefully.
- Idle limits: SMTP_COMMAND_TIMEOUT inside a mail transaction, the shorter SMTP_PRE_MAIL_TIMEOUT
  outside one (before MAIL, between messages: a sending MTA has its next command ready), and
  SMTP_SESSION_TIME_LIMIT for the whole session, so a client sending NOOP now and then cannot keep
  a slot for ever. Each ends the session with a 421 that says why.
- `busy` is true from the end of DATA's 354 until its reply is sent: shutdown waits for those.

What aiosmtpd already does right, and the tests pin: commands pipelined behind STARTTLS are
discarded when TLS starts (RFC 3207 section 4.2, aiosmtpd >= 1.4.6), commands are read one line
at a time, so PIPELINING needs nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, syntax

from provider.errors import DomainError, IdleTimeout, MessageTooBig, SessionTooLong, ShuttingDown

from .data import DataFlood, read_data
from .transaction import Transaction

log = logging.getLogger(__name__)

STREAM_LIMIT = 1 << 16

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
SIMPLE_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*)>")
"""`<local@domain>` with a dot-atom local part and a host name: what nearly every MTA sends."""
"""Reader buffer limit: a DATA line longer than this arrives in pieces (and is kept whole)."""


class EdgeSMTP(SMTP):
    line_length_limit = STREAM_LIMIT

    def __init__(
        self,
        handler: Any,
        *,
        on_open: Callable[[EdgeSMTP, Any], str | None],
        on_close: Callable[[EdgeSMTP], None],
        processing_timeout: float,
        pre_mail_timeout: float | None = None,
        session_time_limit: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._on_open = on_open
        self._on_close = on_close
        self._processing_timeout = processing_timeout
        # Outside a transaction the shorter of the two limits applies.
        self._pre_mail_timeout = min(pre_mail_timeout or self._timeout_duration, self._timeout_duration)
        self._session_time_limit = session_time_limit
        self._session_timer: asyncio.TimerHandle | None = None
        self._idle_since = 0.0
        self._idle_fixed = False  # the idle limit was given (a delivery's processing time)
        self._refused = False
        self._delivering = False  # the message has arrived and its handler runs
        self._over_time = False
        self.busy = False

    # Methods, not properties: aiosmtpd's constructor runs inspect.getmembers on the instance.
    def current_transaction(self) -> Transaction:
        assert isinstance(self.envelope, Transaction)
        return self.envelope

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd reads every MAIL and RCPT path with the email package's RFC 5322 parser (and
        defines a class on each call): a fifth of the edge's time in a profile. The common
        `<dot-atom@host>` is matched directly, with the same result; anything else (quoted local
        parts, address literals, UTF-8, the null path, syntax errors) goes to aiosmtpd."""
        stripped = arg.lstrip()
        match = SIMPLE_PATH.match(stripped)
        if match is None:
            return super()._getaddr(arg)
        rest = stripped[match.end():].lstrip(" \t")  # the parser drops the blanks after ">"
        if rest.startswith("("):  # ... and RFC 5322 comments, which it alone reads
            return super()._getaddr(arg)
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    def _create_envelope(self) -> Transaction:
        return Transaction()

    def _set_post_data_state(self) -> None:
        if isinstance(self.envelope, Transaction):
            self.envelope.discard()
        super()._set_post_data_state()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # the connection, not the second call that STARTTLS makes
            refusal = self._on_open(self, transport.get_extra_info("peername"))
            if refusal is not None:
                # aiosmtpd never sees this connection: no greeting, no reader, no timers.
                self._refused = True
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(f"{refusal}\r\n".encode("ascii"))
                transport.close()
                return
            if self._session_time_limit:
                self._session_timer = self.loop.call_later(
                    self._session_time_limit, self._session_over
                )
        super().connection_made(transport)

    def _in_transaction(self) -> bool:
        return self.envelope is not None and self.envelope.mail_from is not None

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Which idle limit applies is decided when the shorter one runs out, not here: aiosmtpd
        resets the timer before it runs a command, so MAIL (which opens a transaction) and RSET
        (which ends one) change the state after the reset."""
        self._idle_since = self.loop.time()
        self._idle_fixed = duration is not None
        if duration is None:
            duration = self._pre_mail_timeout
        super()._reset_timeout(duration)

    def _timeout_cb(self) -> None:
        if self.transport is None:
            return
        if self._idle_fixed:
            super()._timeout_cb()  # a delivery overran its bound: nothing useful to say
            return
        limit = self._timeout_duration if self._in_transaction() else self._pre_mail_timeout
        left = self._idle_since + limit - self.loop.time()
        if left > 0:
            self._timeout_handle = self.loop.call_later(left, self._timeout_cb)
            return
        log.info("%r idle for %.0f s; closing", self.session and self.session.peer, limit)
        self._say_and_close(IdleTimeout())

    def _session_over(self) -> None:
        """SMTP_SESSION_TIME_LIMIT reached. A delivery whose message has arrived finishes and
        sends its reply first (smtp_DATA closes after it); anything else ends now, a message still
        being received included (it was not accepted, and a trickling client is what this stops)."""
        self._over_time = True
        if self._delivering:
            return
        log.info("%r reached the session time limit; closing", self.session and self.session.peer)
        self._say_and_close(SessionTooLong())

    def _say_and_close(self, error: DomainError) -> None:
        if self.transport is None:
            return
        if not self._peer_gone():
            self._writer.write(f"{error.smtp_reply}\r\n".encode("ascii"))
        self.transport.close()

    def _peer_gone(self) -> bool:
        # After STARTTLS the writer's transport is asyncio's TLS wrapper; once the client has gone it
        # can be half torn down, and writing to it raises AttributeError inside asyncio (3.13.0).
        transport = self._writer.transport if self._writer is not None else self.transport
        return transport is None or transport.is_closing() or getattr(transport, "_ssl_protocol", 1) is None

    async def push(self, status: AnyStr) -> None:
        if self._peer_gone():
            return
        await super().push(status)

    def connection_lost(self, error: Exception | None) -> None:
        self._on_close(self)
        if self._refused:
            return
        if self._session_timer is not None:
            self._session_timer.cancel()
        # During DATA the message may be complete in the buffer already (a client that leaves
        # right after the final dot): smtp_DATA decides, and the delivery keeps its SPF check.
        if isinstance(self.envelope, Transaction) and not self.busy:
            self.envelope.discard()
        super().connection_lost(error)

    def shut_down(self) -> None:
        """Say 421 and close, unless a message is being delivered (then it finishes first)."""
        if not self.busy:
            self._say_and_close(ShuttingDown())

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        transaction = self.current_transaction()
        if not transaction.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        refuse = getattr(self.event_handler, "refuse_data", None)
        if refuse is not None:
            refusal = await refuse(self, self.session, transaction)
            if refusal:
                await self.push(refusal)
                return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self.busy = True
        try:
            limit = transaction.size_limit
            try:
                received = await read_data(self._reader, limit, keepalive=self._reset_timeout)
            except DataFlood as flood:
                transaction.size = flood.size
                log.warning(
                    "%r kept sending far past %d bytes; closing",
                    self.session and self.session.peer,
                    limit,
                )
                flooded = getattr(self.event_handler, "data_flooded", None)
                if flooded is not None:
                    await flooded(self.session, transaction)
                await self.push(MessageTooBig(limit).smtp_reply)
                self.abort()
                return
            transaction.size = received.size
            if received.content is None:
                transaction.oversize = True
            else:
                transaction.content = transaction.original_content = received.content
            del received
            # The POST may take the target's whole timeout; the idle timer must not cut it short.
            self._reset_timeout(self._processing_timeout)
            self._delivering = True
            status = await self._call_handler_hook("DATA")
        finally:
            self.busy = self._delivering = False
            if self._peer_gone() and isinstance(self.envelope, Transaction):
                self.envelope.discard()  # what the delivery did not take over ends with the client
        self._set_post_data_state()
        self._reset_timeout()
        await self.push(status)
        if self._over_time:
            self._say_and_close(SessionTooLong())


class MxSMTP(EdgeSMTP):
    """The inbound listener: AUTH is never offered here, and asking for it is refused."""

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push("502 5.5.1 AUTH is not available on this port")
