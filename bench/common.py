"""What every benchmark needs: the real service on embedded servers, a load loop, and honest figures.

Figures on these shared 2-core machines are noisy, so every benchmark measures a baseline in the
same run and reports ratios beside absolute numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dev.services import embedded
from provider.crypto import new_encryption_key

ROOT = Path(__file__).resolve().parent.parent
# The pid of the process that serves each URL started here, so CPU can be charged to it.
_SERVER_PIDS: dict[str, int] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def service_env(**overrides: str) -> Iterator[dict[str, str]]:
    """Embedded PostgreSQL and Redis in a temporary folder, migrated, and the env every process needs."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, embedded(
        Path(tmp), "bench", temporary=True
    ) as svc:
        redis_server, postgres_server = svc._handles
        _SERVER_PIDS[svc.redis_url] = int(redis_server.pid)
        postmaster = Path(postgres_server.pgdata, "postmaster.pid").read_text().split()[0]
        _SERVER_PIDS[svc.database_url] = int(postmaster)
        env = {
            **os.environ,
            "DATABASE_URL": svc.database_url,
            "REDIS_URL": svc.redis_url,
            "ENCRYPTION_KEY": new_encryption_key(),
            "HEROKU_ADDON_PASSWORD": secrets.token_hex(16),
            "HEROKU_SSO_SALT": secrets.token_hex(16),
            "HEROKU_OAUTH_CLIENT_SECRET": secrets.token_hex(16),
            "INBOUND_DOMAIN": "cloudmailin.test",
            "LOG_LEVEL": "WARNING",
            "SMTP_DATA_DIR": tmp,
            **overrides,
        }
        flask = str(Path(sys.executable).parent / "flask")
        subprocess.run([flask, "--app", "provider", "db", "upgrade"], env=env, check=True,
                       capture_output=True)
        yield env


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise KeyError(f"no {name!r} process in the Procfile")


@contextlib.contextmanager
def web_process(
    env: dict[str, str], *, workers: int = 2, access_log: Path | None = None
) -> Iterator[str]:
    """The Procfile's web line itself, through a shell as Heroku runs it, on a free port, so the
    figures are those of the production command; its access log (stdout) is written to
    `access_log` (its request times are the server-side figures) or discarded."""
    port = free_port()
    log_file = access_log.open("wb") if access_log else None
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {procfile_command('web')}"],
        env={**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers),
             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"},
        cwd=ROOT, stdout=log_file or subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    _SERVER_PIDS[base_url] = proc.pid
    try:
        wait_for_port(port)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if log_file:
            log_file.close()


def server_pid(url: str) -> int:
    """The pid of the process started here that serves `url` (gunicorn's master for the web)."""
    return _SERVER_PIDS[url]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                tree.setdefault(ppid, []).append(int(entry))
    return tree


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # ended since it was listed
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds (user + system) used by each server and by this process, the load client.

    Each server counts with all its descendants (gunicorn workers, PostgreSQL backends), so the
    figures show where a request's cost lands on the machine the client shares with them.
    """

    def __init__(self, **urls: str) -> None:
        self.roots = {name: _SERVER_PIDS[url] for name, url in urls.items()}

    def snapshot(self) -> dict[str, float]:
        tree = _children()
        used: dict[str, float] = {}
        for name, root in self.roots.items():
            pids, todo = [], [root]
            while todo:
                pid = todo.pop()
                pids.append(pid)
                todo.extend(tree.get(pid, []))
            used[name] = sum(_cpu_of(pid) for pid in pids)
        used["client"] = time.process_time()
        return used


@dataclass
class Figures:
    label: str
    latencies: list[float]
    elapsed: float
    errors: int
    # CPU seconds per process group over the measurement (empty without a CpuMeter).
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000

    def row(self) -> str:
        return (f"{self.label:<44} n={len(self.latencies):>5}  p50={self.pct(50):7.1f} ms  "
                f"p99={self.pct(99):7.1f} ms  {self.rate:8.1f}/s  errors={self.errors}")

    def cpu_per_request(self) -> float:
        """CPU seconds per request over every measured process group (0 without a CpuMeter)."""
        done = len(self.latencies) + self.errors
        return sum(self.cpu.values()) / done if self.cpu and done else 0.0

    def cpu_row(self) -> str:
        """CPU milliseconds per request for each process group, and how busy the 2 cores were."""
        done = len(self.latencies) + self.errors
        if not self.cpu or not done:
            return ""
        per = "  ".join(f"{name} {seconds / done * 1000:5.2f}" for name, seconds in self.cpu.items())
        busy = sum(self.cpu.values()) / self.elapsed if self.elapsed else 0.0
        return f"{'':<44} CPU ms/request: {per}  (cores busy {busy:4.2f})"


async def run_load(
    label: str,
    total: int,
    concurrency: int,
    one: Callable[[int], Awaitable[bool]],
    meter: CpuMeter | None = None,
) -> Figures:
    """Run `total` calls of `one(i)` with `concurrency` in flight; `one` returns False for an error."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def client() -> None:
        nonlocal errors
        for i in counter:
            start = time.perf_counter()
            ok = await one(i)
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    before = meter.snapshot() if meter else {}
    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    after = meter.snapshot() if meter else {}
    return Figures(label, latencies, elapsed, errors, {k: after[k] - before[k] for k in after})


def verdict(name: str, ok: bool, detail: str) -> str:
    return f"  {'PASS' if ok else 'MISS'}  {name}: {detail}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
