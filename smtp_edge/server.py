"""Starts the SMTP listeners and keeps them running until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiosmtpd.smtp import SMTP, Envelope, Session

from provider.settings import Settings, get_settings

log = logging.getLogger(__name__)


class RefuseAll:
    """Until routing exists, every recipient is refused: never relay (RFC 5321 §3.6.2)."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        return "550 5.1.1 No such recipient here"


async def serve(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(RefuseAll(), hostname=settings.smtp_hostname),
        host=settings.smtp_bind_host,
        port=settings.smtp_mx_port,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("MX listener on %s:%s", settings.smtp_bind_host, settings.smtp_mx_port)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    asyncio.run(serve(settings))
