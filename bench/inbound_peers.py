"""The processes bench/inbound.py measures, each on its own: the HTTP target (which also serves
the SPF zone over DNS), the bare aiosmtpd baseline, and the edge itself (`python -m smtp_edge`)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import psutil

from .common import ROOT, free_port, wait_for_port

MB = 1024 * 1024
SPF_ZONE = {"sender.example": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}
DKIM_SELECTOR = "bench"
DKIM_PASS = b'"selector":"bench","result":"pass"'
"""What a JSON POST holds when the edge verified the bench's signature."""


def auth_zone(public_key: str) -> dict[str, dict[str, list[str]]]:
    """The sender's DKIM key (`public_key`: the base64 `p=`) and DMARC policy."""
    return {
        f"{DKIM_SELECTOR}._domainkey.sender.example": {"TXT": [f"v=DKIM1; k=rsa; p={public_key}"]},
        "_dmarc.sender.example": {"TXT": ["v=DMARC1; p=reject"]},
    }
BENCH_ID = re.compile(rb"bench-id-(\d+)")
"""Every test message carries its number so the target can report its own time per message."""


def target_main(conn: Connection) -> None:
    """HTTP target (200 at once, records its own time per bench id, counts verified DKIM
    signatures) plus the DNS of the SPF, DKIM and DMARC zone (the public key comes first)."""
    sys.path.insert(0, str(ROOT))
    from aiohttp import web

    from tests.dnsserver import DnsServer

    public_key = conn.recv()
    times: dict[int, float] = {}
    count = 0
    dkim_pass = 0

    async def incoming(request: web.Request) -> web.Response:
        nonlocal count, dkim_pass
        started = time.perf_counter()
        body = await request.read()
        match = BENCH_ID.search(body, 0, 1 << 16)
        count += 1
        dkim_pass += DKIM_PASS in body[: 1 << 16]
        if match:
            times[int(match.group(1))] = time.perf_counter() - started
        return web.Response(status=200, text="ok")

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"count": count, "times": times, "dkim_pass": dkim_pass})

    async def serve() -> None:
        app = web.Application(client_max_size=256 * MB)
        app.router.add_post("/incoming", incoming)
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        with DnsServer({**SPF_ZONE, **auth_zone(public_key)}) as dns:
            conn.send((port, dns.nameservers))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()

    asyncio.run(serve())


def _serve_smtp(conn: Connection, handler: Any, hostname: str) -> None:
    """Run plain aiosmtpd with `handler` on a free port: send the port, serve until told to stop."""
    import logging

    from aiosmtpd.smtp import SMTP

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname=hostname, data_size_limit=None), host="127.0.0.1", port=0
        )
        conn.send(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, conn.recv)
        server.close()
        close = getattr(handler, "close", None)
        if close is not None:
            await close()

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    asyncio.run(serve())


def bare_main(conn: Connection) -> None:
    """aiosmtpd with a handler that accepts and discards: what SMTP alone costs."""
    from aiosmtpd.smtp import SMTP, Envelope, Session

    class Discard:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            return "250 2.0.0 OK"

    _serve_smtp(conn, Discard(), "bare.test")


def post_main(conn: Connection) -> None:
    """aiosmtpd that POSTs each message, as is, to the target and answers 250: what SMTP plus the
    POST inside the transaction (DESIGN.md decision 1) cost before any parsing or bookkeeping."""
    import aiohttp
    from aiosmtpd.smtp import SMTP, Envelope, Session

    target_url = conn.recv()

    class Post:
        http: aiohttp.ClientSession | None = None

        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            if self.http is None:
                self.http = aiohttp.ClientSession()
            assert isinstance(envelope.content, bytes)
            headers = {"Content-Type": "message/rfc822"}
            async with self.http.post(target_url, data=envelope.content, headers=headers) as response:
                await response.read()
            return "250 2.0.0 OK"

        async def close(self) -> None:
            if self.http is not None:
                await self.http.close()

    _serve_smtp(conn, Post(), "post.test")


@contextlib.contextmanager
def child(main: Callable[[Connection], None], *sent: Any) -> Iterator[Any]:
    """Run `main(pipe)` in a spawned process, send it `sent`; yields the first thing it sends
    back (its port)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child_end = ctx.Pipe()
    proc = ctx.Process(target=main, args=(child_end,), daemon=True)
    proc.start()
    for item in sent:
        parent.send(item)
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.terminate()


@contextlib.contextmanager
def edge_process(env: dict[str, str], nameservers: str) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    edge_env = {
        **env,
        "SMTP_MX_PORT": str(port),
        "SMTP_SUBMISSION_PORT": str(free_port()),
        "DNS_NAMESERVERS": nameservers,
        "TARGET_TIMEOUT": "60",
        "SMTP_COMMAND_TIMEOUT": "120",
    }
    proc = subprocess.Popen([sys.executable, "-m", "smtp_edge"], env=edge_env, cwd=ROOT)
    try:
        wait_for_port(port)
        yield port, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def make_address(env: dict[str, str], target_url: str) -> str:
    """A provisioned corp2m add-on (40 MB messages) whose forward address posts to the target."""
    from provider.db import session_factory
    from provider.models import Address
    from provider.plans import PLANS
    from provider.services.partner_requests import ProvisionRequest
    from provider.services.provisioning import provision
    from provider.settings import load_settings
    from provider.tasks import RqJobQueue

    settings = load_settings(env)
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        request = ProvisionRequest(
            uuid=str(uuid.uuid4()),
            plan=PLANS["corp2m"],
            log_input_url="http://token:t@127.0.0.1:9/logs",
            target=target_url,
        )
        answer = provision(session, settings, request, RqJobQueue(settings.redis_url))
        address = session.query(Address).filter_by(resource_id=answer.resource_id).one()
        return f"{address.local_id}@{settings.inbound_domain}"
