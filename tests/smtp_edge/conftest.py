"""The SMTP edge, in process, with real peers: reused by every SMTP test (and corpus, hostile
input, benchmark tests).

- `edge`: the real `EdgeServer` (MX and submission listeners on random 127.0.0.1 ports) running on
  an event loop of its own in a thread, against the test database, with SPF looked up in a real
  DNS server on 127.0.0.1 (`dns_server`, zone `SPF_ZONE`).
- `target`: a real HTTP server on 127.0.0.1 that records every request and answers by path:
  `/status/<code>` (text/plain body, `?reason=` sets the first line), `/redirect?to=<path>&code=`,
  `/loop` (redirects to itself forever), `/never` (never answers), `/held/<code>` (answers
  `<code>` once the test sets `target.release`).
- `mailbox(path)`: a provisioned resource with a forward address whose target is that path.
- `Conversation`: a raw-socket SMTP client for transcripts asserted line by line.
- `running_edge(settings)`: `python -m smtp_edge` as a real process (to kill -9 or SIGTERM).
Tweak the edge's settings with `edge.restart(**changes)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.policy
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.crypto import SecretBox
from provider.models import InboundMessage, Resource
from provider.models.resource import PROVISIONED
from provider.settings import Settings
from smtp_edge.server import EdgeServer
from tests.conftest import REPO_ROOT
from tests.dnsserver import DnsServer
from tests.domain_rows import create_address

SENDER_DOMAIN = "sender.example"
SENDER = f"someone@{SENDER_DOMAIN}"
SPF_ZONE = {
    SENDER_DOMAIN: {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    "stranger.example": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
}
INBOUND_DOMAIN = "cloudmailin.test"


# --- The HTTP target --------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def form(self) -> dict[str, bytes]:
        """The fields of a multipart/form-data body (last value wins), bytes exactly as sent."""
        head = f"Content-Type: {self.header('content-type')}\r\n\r\n".encode()
        parsed = BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body)
        fields: dict[str, bytes] = {}
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            assert isinstance(name, str) and isinstance(payload, bytes)
            fields[name] = payload
        return fields


@dataclass
class Target:
    """A real HTTP server on 127.0.0.1 recording what the edge POSTs to it."""

    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def record(self, request: Request) -> None:
        with self.arrived:
            self.requests.append(request)
            self.arrived.notify_all()

    def wait_for(self, path_prefix: str, timeout: float = 30.0) -> Request:
        """Block until a request for `path_prefix` has arrived (e.g. one that will hang)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: self.posts_to(path_prefix), timeout)
            return self.posts_to(path_prefix)[0]

    def url(self, path: str, *, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self.port}{path}"

    def posts_to(self, path_prefix: str) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]


def _target_handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            target.record(Request("POST", self.path, headers, body))
            self._answer()

        def do_GET(self) -> None:
            target.record(Request("GET", self.path, {}, b""))
            self._answer()

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/never":
                target.release.wait()
                self.close_connection = True  # hang up without an answer
                return
            if match := re.fullmatch(r"/held/(\d{3})", parts.path):
                target.release.wait()
                self._send(int(match.group(1)), b"held\n")
                return
            if parts.path == "/loop":
                self._send(302, b"", location="/loop")
            elif parts.path == "/redirect":
                self._send(int(query.get("code", "302")), b"", location=query["to"])
            elif match := re.fullmatch(r"/status/(\d{3})", parts.path):
                code = int(match.group(1))
                reason = query.get("reason", f"status {code}")
                body = (reason + "\nsecond line is not shown\n").encode()
                self._send(code, body, content_type=query.get("type", "text/plain; charset=utf-8"))
            else:
                self._send(404, b"no such test path\n")

        def _send(
            self,
            code: int,
            body: bytes,
            *,
            location: str | None = None,
            content_type: str = "text/plain",
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if location is not None:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def target() -> Iterator[Target]:
    with serving_target() as state:
        yield state


@contextmanager
def serving_target() -> Iterator[Target]:
    """The `target` fixture's server, for tests outside this folder (the Heroku CLI's)."""
    state = Target()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _target_handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


# --- DNS, settings and the edge ----------------------------------------------------------------


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer(SPF_ZONE) as server:
        yield server


@pytest.fixture(scope="session")
def smtp_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per test session, so the self-signed certificate is generated once."""
    return tmp_path_factory.mktemp("smtp-data")


@pytest.fixture
def edge_settings(settings: Settings, dns_server: DnsServer, smtp_data_dir: Path) -> Settings:
    return dataclasses.replace(
        settings,
        smtp_data_dir=str(smtp_data_dir),
        dns_nameservers=dns_server.nameservers,
        target_timeout=5.0,
        smtp_command_timeout=30.0,
        smtp_hostname="mx.cloudmailin.test",
    )


class EdgeThread:
    """The edge on its own event loop in a thread, as `python -m smtp_edge` runs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server = EdgeServer(settings)
        self.call(self.server.start())

    def call(self, coroutine: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def mx_port(self) -> int:
        return self.server.mx_port

    @property
    def submission_port(self) -> int:
        return self.server.submission_port

    def stop(self, grace: float = 1.0) -> None:
        if self.server is not None:
            self.call(self.server.stop(grace=grace))

    def restart(self, **changes: Any) -> None:
        """Run again with other settings (e.g. target_timeout=0.5)."""
        self.stop()
        self.settings = dataclasses.replace(self.settings, **changes)
        self.server = EdgeServer(self.settings)
        self.call(self.server.start())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def edge(edge_settings: Settings) -> Iterator[EdgeThread]:
    running = EdgeThread(edge_settings)
    try:
        yield running
    finally:
        running.close()


# --- Customers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mailbox:
    address: str
    local_id: str
    resource_id: str
    address_id: int
    signing_secret: str


@pytest.fixture
def mailbox(db_session: Session, settings: Settings, target: Target) -> Callable[..., Mailbox]:
    def make(
        path: str = "/status/201",
        *,
        fmt: str = "json",
        plan: str = "free",
        userinfo: str = "",
        state: str = PROVISIONED,
        target_url: str | None = None,
    ) -> Mailbox:
        resource = Resource(id=str(uuid.uuid4()), plan=plan, state=state, app_name="app")
        db_session.add(resource)
        url = target_url if target_url is not None else target.url(path, userinfo=userinfo)
        address = create_address(db_session, settings, resource, url or None)
        address.format = fmt
        db_session.commit()
        secret = SecretBox(settings.encryption_key).decrypt(address.signing_secret_enc)
        return Mailbox(
            f"{address.local_id}@{INBOUND_DOMAIN}",
            address.local_id,
            resource.id,
            address.id,
            secret,
        )

    return make


# --- SMTP clients -----------------------------------------------------------------------------


def message(subject: str = "Hello", body: str = "Hi there.\r\n", *, to: str = "x@example") -> bytes:
    return (
        f"From: Someone <{SENDER}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@sender.example>\r\n\r\n{body}"
    ).encode()


class Conversation:
    """A raw SMTP client: exact bytes out, whole replies (all lines) back."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, source: str | None = None) -> None:
        """`source`: the client's own address (any of 127.0.0.0/8 reaches a 127.0.0.1 listener)."""
        source_address = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=30, source_address=source_address)
        self._buffer = b""
        self.greeting = self.reply()

    def send(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.sock.sendall(raw)

    def reply(self) -> list[str]:
        lines: list[str] = []
        while True:
            while b"\r\n" not in self._buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"connection closed after {lines!r}")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\r\n", 1)
            text = line.decode()
            lines.append(text)
            if re.match(r"^\d{3}(?: |$)", text):
                return lines

    def command(self, line: str) -> list[str]:
        self.send(line + "\r\n")
        return self.reply()

    def starttls(self) -> None:
        assert self.command("STARTTLS")[0].startswith("220")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


def send(
    edge: EdgeThread, to: list[str], raw: bytes, sender: str = SENDER
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", edge.mx_port, local_hostname="client.example") as client:
        return client.sendmail(sender, to, raw)


def smtp_error(edge: EdgeThread, to: list[str], raw: bytes) -> tuple[int, str]:
    """The code and text of the reply refusing the message after DATA."""
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(edge, to, raw)
    error = caught.value.smtp_error
    return caught.value.smtp_code, error.decode() if isinstance(error, bytes) else error


def history(db_session: Session) -> list[InboundMessage]:
    """Every history row, oldest first, as committed now."""
    db_session.expire_all()
    return list(db_session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def open_transaction(port: int, *recipients: str) -> Conversation:
    """A session past EHLO and MAIL FROM, and RCPT TO each of `recipients` (all accepted)."""
    smtp = Conversation(port)
    smtp.command("EHLO client.example")
    assert smtp.command(f"MAIL FROM:<{SENDER}>") == ["250 2.1.0 OK"]
    for recipient in recipients:
        assert smtp.command(f"RCPT TO:<{recipient}>") == ["250 2.1.5 OK"]
    return smtp


def talk(conversation: Conversation, script: list[tuple[str, list[str]]]) -> None:
    """Assert a transcript: each client line and the exact reply lines it gets."""
    for line, expected in script:
        assert (line, conversation.command(line)) == (line, expected)


@contextlib.contextmanager
def running_edge(settings: Settings) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`python -m smtp_edge` as the Procfile runs it, on `settings`' database and DNS server:
    (the process, its MX port). Killed at the end if it is still running."""
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "ENCRYPTION_KEY": settings.encryption_key,
        "INBOUND_DOMAIN": settings.inbound_domain,
        "SMTP_BIND_HOST": "127.0.0.1",
        "SMTP_MX_PORT": "0",
        "SMTP_SUBMISSION_PORT": "0",
        "SMTP_HOSTNAME": "mx.cloudmailin.test",
        "SMTP_DATA_DIR": settings.smtp_data_dir,
        "DNS_NAMESERVERS": settings.dns_nameservers,
        "LOG_LEVEL": "INFO",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "smtp_edge"],
        cwd=REPO_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    port = 0
    for line in process.stderr:
        if found := re.search(r"MX listener on 127\.0\.0\.1:(\d+)", line):
            port = int(found.group(1))
            break
    assert port, "the edge exited before listening"
    # Keep reading its log so a full pipe never blocks the process.
    drain = threading.Thread(target=process.stderr.read, daemon=True)
    drain.start()
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        drain.join(30)
        process.stderr.close()
