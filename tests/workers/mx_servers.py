"""Receiving MXes for delivery tests: real aiosmtpd servers on loopback addresses (127.0.0.2, ...)
that share one port, found through MX records a real DNS server on 127.0.0.1 serves.

Each server's behaviour comes from the recipient's local part, so one test can mix outcomes:
`defer-once-*` answers 451 the first time it sees that recipient, `reject-*` 550 5.1.1 at RCPT,
`spam-*` 554 5.7.1 after DATA, `drop-*` closes the connection after DATA arrives (no reply),
`hang-*` never answers DATA, `hang-once-*` holds its first DATA until `release` is set and
then answers 451 (the sender is meant to have died meanwhile) and takes later ones. Everything else
is accepted with 250 and kept in `received`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    host: str


@dataclass
class MxState:
    received: list[Received] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    connections: int = 0
    hanging: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler:
    def __init__(self, state: MxState, host: str) -> None:
        self.state = state
        self.host = host

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        local = address.split("@", 1)[0]
        if local.startswith("reject-"):
            return "550 5.1.1 No such user here"
        if local.startswith("defer-once-"):
            with self.state.lock:
                first = address not in self.state.seen
                self.state.seen.add(address)
            if first:
                return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        locals_ = [r.split("@", 1)[0] for r in envelope.rcpt_tos]
        if any(local.startswith("drop-") for local in locals_):
            assert server.transport is not None
            server.transport.close()
            return "250 2.0.0 never seen"
        if any(local.startswith("hang-once-") for local in locals_):
            key = "data:" + ",".join(envelope.rcpt_tos)
            with self.state.lock:
                first = key not in self.state.seen
                self.state.seen.add(key)
                self.state.hanging += first
            if first:
                await asyncio.get_running_loop().run_in_executor(None, self.state.release.wait, 60)
                return "451 4.3.0 Too late"
        elif any(local.startswith("hang-") for local in locals_):
            await asyncio.get_running_loop().run_in_executor(None, self.state.release.wait, 30)
        if any(local.startswith("spam-") for local in locals_):
            return "554 5.7.1 Message rejected as spam"
        data = envelope.original_content or b""
        with self.state.lock:
            received = Received(str(envelope.mail_from), list(envelope.rcpt_tos), data, self.host)
            self.state.received.append(received)
        return "250 2.0.0 Queued on the receiving side"


class CountingSMTP(SMTP):
    def __init__(self, *args: object, state: MxState, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._state = state

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        with self._state.lock:
            self._state.connections += 1
        super().connection_made(transport)  # type: ignore[arg-type]


class MxController(Controller):
    def __init__(self, state: MxState, host: str, port: int) -> None:
        super().__init__(Handler(state, host), hostname=host, port=port)
        self.state = state

    def factory(self) -> SMTP:
        return CountingSMTP(self.handler, state=self.state, hostname="mx.receiver.test")


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def mx_servers(*hosts: str) -> Iterator[tuple[MxState, int]]:
    """Servers on each of `hosts` at one shared port; yields their common state and the port."""
    state = MxState()
    for _ in range(20):
        port = free_port(hosts[0])
        controllers = []
        try:
            for host in hosts:
                controller = MxController(state, host, port)
                controller.start()
                controllers.append(controller)
        except (OSError, RuntimeError):
            for controller in controllers:
                controller.stop()
            continue
        break
    else:
        raise RuntimeError("no port free on every MX address")
    try:
        yield state, port
    finally:
        state.release.set()
        for controller in controllers:
            controller.stop()
