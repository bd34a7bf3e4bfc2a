"""`make run`'s runner (`python -m dev.run`) started as a supervisor or `nohup` starts it, with
SIGINT ignored: SIGTERM stops every process it started and frees every port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO_ROOT

READY = "Ctrl-C stops everything"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def started() -> Iterator[list[psutil.Process]]:
    processes: list[psutil.Process] = []
    yield processes
    for process in processes:  # whatever a failed run left behind
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def test_sigterm_stops_every_child_and_frees_every_port_when_sigint_is_ignored(
    tmp_path: Path, started: list[psutil.Process]
) -> None:
    ports = {name: _free_port() for name in
             ("PORT", "STANDIN_PORT", "DEMO_TARGET_PORT", "DEMO_MX_PORT", "SMTP_MX_PORT",
              "SMTP_SUBMISSION_PORT", "DEMO_S3_PORT")}
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DEV_DATA_DIR": str(tmp_path / "data"),  # embedded PostgreSQL and Redis of its own
        "LOG_LEVEL": "WARNING",
        **{name: str(port) for name, port in ports.items()},
    }
    runner = subprocess.Popen(
        ["bash", "-c", f"trap '' INT; exec {sys.executable} -m dev.run"], cwd=REPO_ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    started.append(psutil.Process(runner.pid))
    output: list[str] = []
    assert runner.stdout is not None
    reader = threading.Thread(target=lambda: output.extend(runner.stdout or ()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    while not any(READY in line for line in output):
        assert runner.poll() is None, "".join(output)[-3000:]
        assert time.monotonic() < deadline, "dev.run did not come up: " + "".join(output)[-3000:]
        time.sleep(0.5)

    started.extend(psutil.Process(runner.pid).children(recursive=True))
    postmaster_pid = next((tmp_path / "data").rglob("postmaster.pid")).read_text().split()[0]
    started.append(psutil.Process(int(postmaster_pid)))  # pg_ctl daemonizes it: not a descendant
    assert all(_listening(port) for port in ports.values())
    commands = {" ".join(process.cmdline()) for process in started}
    assert any("tests.heroku_standin" in c for c in commands)
    assert any("dev.echo_target" in c for c in commands)
    assert any("weed server" in c for c in commands)

    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=120)
    reader.join(timeout=10)

    left = [" ".join(p.cmdline()) for p in started if not _gone(p)]
    assert left == []
    assert [name for name, port in ports.items() if _listening(port)] == []
