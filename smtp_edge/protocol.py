"""aiosmtpd's SMTP protocol, adjusted where the edge needs other behaviour.

- DATA is read by `data.read_data` (only CRLF.CRLF ends it, long lines kept, nothing buffered
  past the transaction's size limit, the idle timer kept alive while bytes flow) instead of
  aiosmtpd's reader, which refuses lines over 1000 bytes and replies 552 without an enhanced
  status.
- Each transaction is a `Transaction` (route, SPF check); ending one cancels its SPF check.
- Sessions register with the server, which caps their number and shuts them down gracefully.
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

from provider.errors import MessageTooBig, ShuttingDown

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
        on_open: Callable[[EdgeSMTP], None],
        on_close: Callable[[EdgeSMTP], None],
        processing_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._on_open = on_open
        self._on_close = on_close
        self._processing_timeout = processing_timeout
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
        first = self.transport is None  # not the second call that STARTTLS makes
        super().connection_made(transport)
        if first:
            self._on_open(self)

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
        # During DATA the message may be complete in the buffer already (a client that leaves
        # right after the final dot): smtp_DATA decides, and the delivery keeps its SPF check.
        if isinstance(self.envelope, Transaction) and not self.busy:
            self.envelope.discard()
        super().connection_lost(error)

    def shut_down(self) -> None:
        """Say 421 and close, unless a message is being delivered (then it finishes first)."""
        if self.transport is None or self.busy:
            return
        if not self._peer_gone():
            self._writer.write(f"{ShuttingDown().smtp_reply}\r\n".encode("ascii"))
        self.transport.close()

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
                transaction.content = transaction.original_content = bytes(received.content)
            del received
            # The POST may take the target's whole timeout; the idle timer must not cut it short.
            self._reset_timeout(self._processing_timeout)
            status = await self._call_handler_hook("DATA")
        finally:
            self.busy = False
            if self._peer_gone() and isinstance(self.envelope, Transaction):
                self.envelope.discard()  # what the delivery did not take over ends with the client
        self._set_post_data_state()
        self._reset_timeout()
        await self.push(status)


class MxSMTP(EdgeSMTP):
    """The inbound listener: AUTH is never offered here, and asking for it is refused."""

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push("502 5.5.1 AUTH is not available on this port")
