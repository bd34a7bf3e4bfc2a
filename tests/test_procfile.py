"""The Procfile's commands as Heroku runs them (through a shell): release migrates, web serves
through gunicorn without writing query strings to its access log, worker runs jobs and stops
warm on SIGTERM."""

from __future__ import annotations

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


def test_web_serves_through_gunicorn_and_logs_paths_without_query_strings(
    migrated: Settings, stopped_at_the_end: list[subprocess.Popen[str]]
) -> None:
    port = _free_port()
    web = _start(procfile()["web"], _env(migrated, PORT=str(port), WEB_CONCURRENCY="1"))
    stopped_at_the_end.append(web)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            health = requests.get(f"{base}/healthz", timeout=5)
            break
        except requests.ConnectionError:
            assert web.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
    assert health.status_code == 200
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
