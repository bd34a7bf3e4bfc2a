"""Starts the MX and submission listeners and keeps them running until SIGTERM/SIGINT.

`EdgeServer` is the whole edge in one object, so `python -m smtp_edge`, the tests and the
benchmarks run the same code: `await start()`, then `await stop()`. Sessions of both listeners
count against one cap (SMTP_MAX_SESSIONS) and each client address against its share of it
(SMTP_MAX_SESSIONS_PER_CLIENT, `slots.Slots`); a connection over either is answered 421 and
closed before aiosmtpd greets it. Stopping first closes the listening sockets, then tells idle
sessions 421 and closes them, lets sessions that are delivering a message finish (up to a
bound), and only then cuts whatever is left.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Any

from provider.settings import Settings, get_settings

from .context import EdgeContext
from .dmarc_check import load_public_suffixes
from .malloc_tuning import fix_mmap_threshold
from .mx import MxHandler
from .protocol import EdgeSMTP, MxSMTP
from .slots import Slots
from .spf import DEFAULT_TIME_LIMIT
from .submission import SubmissionHandler, SubmissionSMTP
from .tls import server_tls_context

log = logging.getLogger(__name__)

BANNER = "ESMTP CloudMailin"
SHUTDOWN_MARGIN = 5.0


def _hide_login_data_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd itself sets the deprecated Session.login_data after every successful AUTH.
    return "login_data is deprecated" not in record.getMessage()


class EdgeServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slots = Slots(settings.smtp_max_sessions, settings.smtp_max_sessions_per_client)
        self.sessions = self.slots.sessions
        self.context: EdgeContext | None = None
        self._servers: list[asyncio.Server] = []
        # A message may take SPF time, parsing and the target's whole timeout after DATA.
        self.processing_timeout = settings.target_timeout + DEFAULT_TIME_LIMIT + 60.0

    @property
    def mx_port(self) -> int:
        return self._port(0)

    @property
    def submission_port(self) -> int:
        return self._port(1)

    def _port(self, index: int) -> int:
        sockname = self._servers[index].sockets[0].getsockname()
        return int(sockname[1])

    async def start(self) -> None:
        mail_log = logging.getLogger("mail.log")
        if _hide_login_data_deprecation not in mail_log.filters:
            mail_log.addFilter(_hide_login_data_deprecation)
        settings = self.settings
        self.context = context = EdgeContext(settings)
        context.start()
        tls = server_tls_context(settings)
        mx_handler = MxHandler(context)
        submission_handler = SubmissionHandler(context)
        common: dict[str, Any] = {
            "on_open": self.slots.admit,
            "on_close": self.slots.release,
            "processing_timeout": self.processing_timeout,
            "pre_mail_timeout": settings.smtp_pre_mail_timeout,
            "session_time_limit": settings.smtp_session_time_limit,
            "hostname": settings.smtp_hostname,
            "ident": BANNER,
            "tls_context": tls,
            "timeout": settings.smtp_command_timeout,
            "enable_SMTPUTF8": True,
            "data_size_limit": None,  # the handlers advertise and enforce SIZE themselves
        }

        def mx() -> EdgeSMTP:
            return MxSMTP(mx_handler, **common)

        def submission() -> EdgeSMTP:
            return SubmissionSMTP(
                submission_handler,
                require_starttls=True,
                auth_required=True,
                auth_require_tls=True,
                **common,
            )

        loop = asyncio.get_running_loop()
        for factory, port in (
            (mx, settings.smtp_mx_port),
            (submission, settings.smtp_submission_port),
        ):
            server = await loop.create_server(
                self.slots.capped(factory),
                host=settings.smtp_bind_host,
                port=port,
                family=socket.AF_UNSPEC,
                reuse_address=True,
            )
            self._servers.append(server)
        log.info(
            "MX listener on %s:%s, submission on %s:%s",
            settings.smtp_bind_host,
            self.mx_port,
            settings.smtp_bind_host,
            self.submission_port,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, end idle sessions with 421, give deliveries `grace` seconds."""
        if grace is None:
            grace = self.settings.target_timeout + SHUTDOWN_MARGIN
        self.slots.closing = True  # accepted, not yet connected: told 421 as they connect
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            session.shut_down()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(session.busy for session in self.sessions) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            if session.busy:
                session.abort()
            else:
                session.shut_down()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self.context is not None:
            await self.context.close()
            self.context = None


async def serve(settings: Settings) -> None:
    edge = EdgeServer(settings)
    await edge.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: no new connections; letting deliveries in progress finish")
    await edge.stop()


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    fix_mmap_threshold()  # large messages cost their size, not more (smtp_edge/malloc_tuning.py)
    load_public_suffixes()  # DMARC's, about 70 ms
    if settings.log_level != "DEBUG":
        # aiosmtpd logs every command at INFO, addresses included; keep its warnings only.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    asyncio.run(serve(settings))
