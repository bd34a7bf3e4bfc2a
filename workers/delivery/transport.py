"""SMTP transactions to a destination over connections kept open between messages.

Like Postfix's connection cache, a connection that finished a transaction cleanly goes back to an
idle pool for its host and the next message to that host skips the connect, EHLO and STARTTLS;
idle connections are closed after `IDLE_SECONDS`. Each host gets at most `PER_HOST` connections at
once, so a burst to one domain does not look like an attack to its MX.

TLS is opportunistic (RFC 7435, as every MTA does it for MX delivery): STARTTLS whenever the host
offers it, without checking the certificate, since an MX's certificate rarely matches its name
and refusing would only push the mail to plaintext or to nowhere.

Every outcome is a reply per recipient: the server's own for RCPT refusals and for DATA; a
`4.4.x` text of ours when no server could be asked (connection refused, timeout, lost mid-way).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass, field

import aiosmtplib

from .mx import Destination, Host

IDLE_SECONDS = 10.0
PER_HOST = 10
CONNECT_TIMEOUT = 30.0
COMMAND_TIMEOUT = 120.0
"""RFC 5321 section 4.5.3.2 asks for minutes per command; two keeps a dead peer from holding a slot."""


@dataclass(frozen=True)
class Reply:
    code: int
    text: str
    """The whole reply as the server sent it (`550 5.1.1 No such user`) or our description."""

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def success(self) -> bool:
        return 200 <= self.code < 300


@dataclass
class Outcome:
    host: str | None
    replies: dict[str, Reply] = field(default_factory=dict)
    """Per recipient address, as given."""


def _reply(code: int, message: str) -> Reply:
    return Reply(code, f"{code} {message}".strip())


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class _Idle:
    client: aiosmtplib.SMTP
    since: float


class ConnectionPool:
    def __init__(self, helo_name: str, *, command_timeout: float = COMMAND_TIMEOUT) -> None:
        self.helo_name = helo_name
        self.command_timeout = command_timeout
        self._idle: dict[tuple[str, int], list[_Idle]] = defaultdict(list)
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._tls = _insecure_context()
        self.connects = 0
        """Connections opened so far (tests and the benchmark read how well reuse works)."""

    def _slot(self, key: tuple[str, int]) -> asyncio.Semaphore:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = asyncio.Semaphore(PER_HOST)
        return slot

    async def _connect(self, host: Host) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=host.address,
            port=host.port,
            local_hostname=self.helo_name,
            timeout=self.command_timeout,
            start_tls=False,
            tls_context=self._tls,
        )
        await client.connect(timeout=CONNECT_TIMEOUT)
        self.connects += 1
        try:
            await client.ehlo()
            if client.supports_extension("starttls"):
                await client.starttls(server_hostname=host.name, tls_context=self._tls)
                await client.ehlo()
        except BaseException:
            client.close()
            raise
        return client

    def _take_idle(self, key: tuple[str, int]) -> aiosmtplib.SMTP | None:
        idle = self._idle[key]
        now = time.monotonic()
        while idle:
            entry = idle.pop()
            if now - entry.since < IDLE_SECONDS and entry.client.is_connected:
                return entry.client
            entry.client.close()
        return None

    def _give_back(self, key: tuple[str, int], client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            self._idle[key].append(_Idle(client, time.monotonic()))

    async def close(self) -> None:
        for entries in self._idle.values():
            for entry in entries:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(entry.client.quit(), 2)
                entry.client.close()
        self._idle.clear()

    def close_stale(self) -> None:
        now = time.monotonic()
        for entries in self._idle.values():
            for entry in [e for e in entries if now - e.since >= IDLE_SECONDS]:
                entries.remove(entry)
                entry.client.close()

    async def send(
        self, destination: Destination, mail_from: str, recipients: list[str], data: bytes
    ) -> Outcome:
        """One transaction, to the first host that answers; recipients all get a reply."""
        failure = _reply(451, "4.4.1 No mail server of the domain could be reached")
        for host in destination.hosts:
            key = (host.address, host.port)
            async with self._slot(key):
                client = self._take_idle(key)
                try:
                    if client is not None:
                        try:
                            outcome = await self._transaction(client, host, mail_from, recipients, data)
                        except _Stale:
                            client = None  # the server dropped the cached connection: start afresh
                    if client is None:
                        client = await self._connect(host)
                        outcome = await self._transaction(client, host, mail_from, recipients, data)
                except (TimeoutError, _Stale, aiosmtplib.SMTPException, OSError) as error:
                    if client is not None:
                        client.close()
                    failure = _described(host, error.__cause__ if isinstance(error, _Stale) else error)
                    continue
                self._give_back(key, client)
                return outcome
        return Outcome(None, {address: failure for address in recipients})

    async def _transaction(
        self, client: aiosmtplib.SMTP, host: Host, mail_from: str, recipients: list[str], data: bytes
    ) -> Outcome:
        outcome = Outcome(host.name)
        options = ["BODY=8BITMIME"] if not data.isascii() and client.supports_extension("8bitmime") else []
        try:
            await client.mail(mail_from, options=options)
        except aiosmtplib.SMTPServerDisconnected as lost:
            client.close()
            raise _Stale() from lost
        except aiosmtplib.SMTPResponseException as refused:
            await _reset(client)
            reply = _reply(refused.code, refused.message)
            return Outcome(host.name, {address: reply for address in recipients})
        accepted: list[str] = []
        for address in recipients:
            try:
                response = await client.rcpt(address)
            except aiosmtplib.SMTPResponseException as refused:
                outcome.replies[address] = _reply(refused.code, refused.message)
                continue
            accepted.append(address)
            outcome.replies[address] = _reply(response.code, response.message)
        if not accepted:
            await _reset(client)
            return outcome
        try:
            response = await client.data(data)
            reply = _reply(response.code, response.message)
        except aiosmtplib.SMTPResponseException as refused:
            reply = _reply(refused.code, refused.message)
        for address in accepted:
            outcome.replies[address] = reply
        return outcome


class _Stale(Exception):
    """The connection was gone before the transaction began, so trying again sends nothing twice."""


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except (TimeoutError, aiosmtplib.SMTPException, OSError):
        client.close()


def _described(host: Host, error: BaseException | None) -> Reply:
    """A temporary reply of ours for a host that could not be asked (RFC 3463 X.4.1, X.4.2)."""
    if isinstance(error, aiosmtplib.SMTPResponseException) and error.code >= 400:
        # A 4xx/5xx greeting, EHLO or STARTTLS answer: the server spoke, so its word counts.
        return _reply(error.code, error.message)
    if isinstance(error, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return _reply(451, f"4.4.2 {host.name} did not answer in time")
    if isinstance(error, aiosmtplib.SMTPServerDisconnected):
        return _reply(451, f"4.4.2 {host.name} closed the connection")
    return _reply(451, f"4.4.1 Could not connect to {host.name} ({type(error).__name__})")
