"""The Procfile's commands as Heroku runs them (through a shell): release migrates, web serves
through gunicorn without writing query strings to its access log, keeps answering while clients
stall mid-body and answers the requests it refuses itself in JSON, worker runs jobs and stops
warm on SIGTERM."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from rq import Queue
from rq.job import Job

from provider import log_shipping_queue
from provider.settings import Settings
from provider.tasks import DEFAULT_QUEUE, redis_connection
from tests.conftest import REPO_ROOT


def procfile() -> dict[str, str]:
    entries = {}
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        entries[name.strip()] = command.strip()
    return entries


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "ENCRYPTION_KEY": settings.encryption_key,
        "HEROKU_ADDON_PASSWORD": settings.addon_password,
        "HEROKU_SSO_SALT": settings.sso_salt,
        "LOG_LEVEL": "INFO",
        **extra,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(command: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=REPO_ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


@pytest.fixture
def stopped_at_the_end() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_release_applies_migrations_and_exits_cleanly(migrated: Settings) -> None:
    release = subprocess.run(["bash", "-c", procfile()["release"]], cwd=REPO_ROOT,
                             env=_env(migrated), capture_output=True, text=True, timeout=120)
    assert release.returncode == 0, release.stderr[-2000:]


def _serve_web(settings: Settings, started: list[subprocess.Popen[str]], **extra: str) -> tuple[
    subprocess.Popen[str], int
]:
    """The Procfile's web line on a free port, once /healthz answers."""
    port = _free_port()
    web = _start(procfile()["web"], _env(settings, PORT=str(port), **extra))
    started.append(web)
    deadline = time.monotonic() + 60
    while True:
        try:
            health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            break
        except (requests.ConnectionError, requests.Timeout):  # not listening, or no worker ready yet
            assert web.poll() is None and time.monotonic() < deadline, "the web process did not start"
            time.sleep(0.2)
    assert health.status_code == 200
    return web, port


def test_web_serves_through_gunicorn_and_logs_paths_without_query_strings(
    migrated: Settings, stopped_at_the_end: list[subprocess.Popen[str]]
) -> None:
    web, port = _serve_web(migrated, stopped_at_the_end, WEB_CONCURRENCY="1")
    base = f"http://127.0.0.1:{port}"
    legacy_sso = requests.get(
        f"{base}/heroku/resources/{uuid.uuid4()}",
        params={"token": "SEKRIT-SSO-TOKEN", "timestamp": "1", "email": "who@example.com"},
        timeout=10,
    )
    assert legacy_sso.status_code in (403, 404)
    web.send_signal(signal.SIGTERM)
    output, _ = web.communicate(timeout=60)
    assert web.returncode == 0
    assert '"GET /heroku/resources/' in output and '"GET /healthz HTTP/1.1" 200' in output
    assert "SEKRIT-SSO-TOKEN" not in output and "who@example.com" not in output


def _stalled_body(port: int, settings: Settings) -> socket.socket:
    """A client that declares 100 bytes of body and sends 10, then says nothing more."""
    credentials = base64.b64encode(f"{settings.addon_id}:{settings.addon_password}".encode()).decode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /heroku/resources HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Basic {credentials}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        + b'{"plan": "'
    )
    return sock


def test_clients_stalling_mid_body_leave_the_web_process_answering(
    migrated: Settings, stopped_at_the_end: list[subprocess.Popen[str]]
) -> None:
    _, port = _serve_web(migrated, stopped_at_the_end)
    with contextlib.ExitStack() as stack:
        for _ in range(100):
            stack.enter_context(_stalled_body(port, migrated))
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        assert health.status_code == 200
        ping = requests.get(f"http://127.0.0.1:{port}/heroku/ping", timeout=1,
                            auth=(migrated.addon_id, migrated.addon_password))
        assert ping.status_code == 200


def test_a_provision_through_gunicorn_has_its_log_lines_asked_for_in_redis(
    migrated: Settings, stopped_at_the_end: list[subprocess.Popen[str]]
) -> None:
    _, port = _serve_web(migrated, stopped_at_the_end, WEB_CONCURRENCY="1", PROVISIONING_MODE="sync")
    resource_id = str(uuid.uuid4())
    answer = requests.post(
        f"http://127.0.0.1:{port}/heroku/resources", timeout=10,
        auth=(migrated.addon_id, migrated.addon_password),
        headers={"Content-Type": "application/vnd.heroku-addons+json; version=3"},
        data=json.dumps({"uuid": resource_id, "plan": "starter", "region": "amazon-web-services::us-east-1",
                         "callback_url": "http://127.0.0.1:9/addons/x",
                         "options": {"target": "https://example.test/incoming"},
                         "log_input_url": "http://token:t@127.0.0.1:9/logs"}),
    )
    assert answer.status_code == 201, answer.text  # provisioned in the request (sync mode)
    redis = redis_connection(migrated.redis_url)
    deadline = time.monotonic() + 10
    while not redis.sismember(log_shipping_queue.PENDING_KEY, resource_id):
        assert time.monotonic() < deadline, "the provision's log line was never asked for"
        time.sleep(0.05)


def _raw_answer(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after an error
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (f.partition(":") for f in fields)}
    return status, headers, body


def test_requests_the_server_refuses_before_the_app_get_json_messages(
    migrated: Settings, stopped_at_the_end: list[subprocess.Popen[str]]
) -> None:
    _, port = _serve_web(migrated, stopped_at_the_end, WEB_CONCURRENCY="1")
    too_long = b"GET /heroku/resources/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    status, headers, body = _raw_answer(port, too_long)
    assert status.startswith("HTTP/1.1 414 ")
    assert headers["content-type"] == "application/json"
    assert "Request Line is too large" in json.loads(body)["message"]
    status, headers, body = _raw_answer(port, b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n")
    assert status.startswith("HTTP/1.1 400 ")
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["message"]


def test_worker_runs_jobs_and_finishes_the_current_one_on_sigterm(
    migrated: Settings, stopped_at_the_end: list[subprocess.Popen[str]]
) -> None:
    queue = Queue(DEFAULT_QUEUE, connection=redis_connection(migrated.redis_url))
    quick = queue.enqueue("workers.jobs.logs.dispatch_shipping")
    slow = queue.enqueue("time.sleep", 2)
    worker = _start(procfile()["worker"], _env(migrated))
    stopped_at_the_end.append(worker)
    deadline = time.monotonic() + 60
    while Job.fetch(slow.id, connection=queue.connection).get_status() != "started":
        assert worker.poll() is None and time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.1)
    worker.send_signal(signal.SIGTERM)  # Heroku's dyno stop: a warm shutdown
    worker.communicate(timeout=60)
    assert Job.fetch(quick.id, connection=queue.connection).get_status() == "finished"
    assert Job.fetch(slow.id, connection=queue.connection).get_status() == "finished"
