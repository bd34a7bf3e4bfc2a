"""Pooled connections: one that sat idle is checked and replaced if dead; one in steady use is not
pinged (a round trip per request cost the partner API a tenth of its throughput)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from provider import db as db_module
from provider.db import make_engine


def _backend_pid(engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))


def test_a_connection_killed_while_idle_is_replaced_before_anyone_uses_it(
    migrated, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(migrated.database_url, pool_size=1)
    other = make_engine(migrated.database_url, pool_size=1)
    try:
        dead = _backend_pid(engine)
        with other.connect() as connection:  # the server (or a proxy) drops the idle connection
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
        monkeypatch.setattr(db_module, "IDLE_PING_AFTER", 0.0)  # it has sat long enough
        replacement = _backend_pid(engine)  # no error: the ping found it dead and it was replaced
        assert replacement != dead
    finally:
        engine.dispose()
        other.dispose()


def test_a_connection_in_steady_use_is_not_pinged(migrated) -> None:
    """Used again at once, a connection is handed out without a round trip: killed in between,
    that one use fails (what the idle check spares a request after a quiet spell), and then the
    pool recovers by itself."""
    engine = make_engine(migrated.database_url, pool_size=1)
    other = make_engine(migrated.database_url, pool_size=1)
    try:
        dead = _backend_pid(engine)
        with other.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
        with pytest.raises(OperationalError):
            _backend_pid(engine)
        assert _backend_pid(engine) != dead
    finally:
        engine.dispose()
        other.dispose()
