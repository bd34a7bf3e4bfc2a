"""What bench/outbound.py measures with: a sending account, the delivery workers (`python -m
workers.delivery`, as the Procfile runs them), the baseline sender (bare aiosmtplib) and the
questions put to PostgreSQL about what was delivered when."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from .common import ROOT

SIGNED_DOMAIN = "signed.example"
"""A verified sending domain with a DKIM key; mail from `plain.example` goes unsigned."""
PLAIN_DOMAIN = "plain.example"


@dataclass(frozen=True)
class Sender:
    username: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}


def make_sender(env: dict[str, str]) -> Sender:
    """A corp2m resource (2 million outbound a month), its API key, and SIGNED_DOMAIN with a key."""
    from provider.crypto import box_for
    from provider.db import session_factory
    from provider.models import Domain, Resource
    from provider.models.base import utcnow
    from provider.models.domain import SENDING
    from provider.models.resource import PROVISIONED
    from provider.outbound.dkim import new_key_pair
    from provider.services.credentials import issue_credential
    from provider.settings import load_settings

    settings = load_settings(env)
    with session_factory(settings.database_url)() as session:
        resource = Resource(id=str(uuid.uuid4()), plan="corp2m", state=PROVISIONED)
        session.add(resource)
        credential = issue_credential(session, settings, resource)
        session.flush()
        private, _ = new_key_pair()
        session.add(Domain(
            resource_id=resource.id, name=SIGNED_DOMAIN, kind=SENDING, verified_at=utcnow(),
            dkim_selector="cloudmailin", dkim_private_key_enc=box_for(settings).encrypt(private),
        ))
        session.commit()
        return Sender(credential.username, credential.key)


def message_body(n: int, domain: str = PLAIN_DOMAIN) -> dict[str, object]:
    """About 5 KB once composed: a text part and a 1.5 KB attachment (2 KB in base64)."""
    text = f"Hello, this is message {n}.\n" + "Lorem ipsum dolor sit amet, consectetur adipiscing.\n" * 48
    return {
        "from": f"Shop <orders@{domain}>",
        "to": f"customer{n % 1000}@sink.example",
        "subject": f"Your order {n}",
        "plain": text,
        "attachments": [{"file_name": "receipt.pdf", "content_type": "application/pdf",
                         "content": base64.b64encode(os.urandom(1500)).decode()}],
        "tags": ["bench"],
    }


class Workers:
    """Two delivery processes; `paused()` stops them (SIGSTOP) so the API is measured alone."""

    def __init__(self, env: dict[str, str], count: int = 2) -> None:
        self.procs = [
            subprocess.Popen([sys.executable, "-m", "workers.delivery"], env=env, cwd=ROOT)
            for _ in range(count)
        ]
        self.ps = [psutil.Process(p.pid) for p in self.procs]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        for proc in self.procs:
            proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.resume()

    def resume(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGCONT)

    def cpu(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.ps)

    def peak_rss(self) -> list[int]:
        peaks = []
        for proc in self.procs:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
            peaks.append(int(hwm.split()[1]) * 1024)
        return peaks

    def stop(self) -> None:
        self.resume()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Ledger:
    """What PostgreSQL says of the messages the benchmark sent."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)

    def delivered(self, ids: list[str]) -> tuple[int, float]:
        """How many of `ids` are delivered, and the epoch time of the last delivery."""
        row = self.conn.execute(
            "SELECT count(*), extract(epoch FROM max(updated_at)) FROM outbound_recipients "
            "WHERE message_id = ANY(%s::uuid[]) AND state = 'delivered'", (ids,)
        ).fetchone()
        assert row is not None
        return int(row[0]), float(row[1] or 0.0)

    def delivered_at(self, ids: list[str]) -> dict[str, float]:
        rows = self.conn.execute(
            "SELECT message_id::text, extract(epoch FROM updated_at) FROM outbound_recipients "
            "WHERE message_id = ANY(%s::uuid[]) AND state = 'delivered'", (ids,)
        ).fetchall()
        return {mid: float(at) for mid, at in rows}

    def raw(self, ids: list[str]) -> list[tuple[str, str, bytes]]:
        """(envelope sender, recipient, bytes) of stored messages, for the baseline to send."""
        rows = self.conn.execute(
            "SELECT m.id::text, r.address, m.raw FROM outbound_messages m JOIN outbound_recipients r "
            "ON r.message_id = m.id WHERE m.id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
        return [(f"bounces+{mid}@bounces.cloudmailin.test", rcpt, bytes(raw)) for mid, rcpt, raw in rows]

    def wait_delivered(self, ids: list[str], timeout: float) -> tuple[int, float]:
        deadline = time.monotonic() + timeout
        while True:
            count, last = self.delivered(ids)
            if count >= len(ids) or time.monotonic() > deadline:
                return count, last
            time.sleep(0.1)


async def bare_send(port: int, messages: list[tuple[str, str, bytes]], connections: int) -> float:
    """The baseline: aiosmtplib over `connections` kept-open connections, MAIL/RCPT/DATA per
    message, as the delivery engine's transport does; returns the seconds it took."""
    import aiosmtplib

    clients = []
    for _ in range(connections):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, local_hostname="bench")
        await client.connect()
        await client.ehlo()
        clients.append(client)
    todo = iter(messages)

    async def run(client: aiosmtplib.SMTP) -> None:
        for sender, rcpt, data in todo:
            await client.mail(sender)
            await client.rcpt(rcpt)
            await client.data(data)

    start = time.perf_counter()
    await asyncio.gather(*(run(c) for c in clients))
    elapsed = time.perf_counter() - start
    for client in clients:
        await client.quit()
    return elapsed


@contextlib.contextmanager
def submission_edge(env: dict[str, str]) -> Iterator[int | None]:
    """The Procfile's smtp process (`python -m smtp_edge`); yields its submission port, or None
    where this tree has no SMTP submission yet."""
    import importlib.util

    from .common import _SERVER_PIDS, free_port, wait_for_port

    if importlib.util.find_spec("smtp_edge.submission") is None:
        yield None
        return
    port = free_port()
    edge_env = {**env, "SMTP_MX_PORT": str(free_port()), "SMTP_SUBMISSION_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "smtp_edge"], env=edge_env, cwd=ROOT)
    _SERVER_PIDS["smtp"] = proc.pid  # so a CpuMeter can charge the edge's CPU
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=60)


async def submit_smtp(
    port: int, sender: Sender, messages: list[tuple[str, bytes]], connections: int
) -> list[str]:
    """Submission as an app does it: STARTTLS, AUTH, then message after message per connection;
    returns the ids the `250 Thanks! Queued as: <uuid>` replies named."""
    import re

    import aiosmtplib

    queued = re.compile(r"Queued as:? <?([0-9a-f-]{36})")
    clients = []
    for _ in range(connections):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, validate_certs=False,
                                 local_hostname="bench")
        await client.connect()
        await client.login(sender.username, sender.key)
        clients.append(client)
    todo = iter(messages)
    ids: list[str] = []

    async def run(client: aiosmtplib.SMTP) -> None:
        for rcpt, data in todo:
            await client.mail(f"orders@{PLAIN_DOMAIN}")
            await client.rcpt(rcpt)
            reply = await client.data(data)
            found = queued.search(reply.message)
            if found:
                ids.append(found.group(1))

    await asyncio.gather(*(run(c) for c in clients))
    for client in clients:
        await client.quit()
    return ids
