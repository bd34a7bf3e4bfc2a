"""Database access for every process.

The web process uses Flask-SQLAlchemy's request-scoped `db.session` (provider/extensions.py, so
Flask-Migrate can run migrations); the SMTP edge and the workers use `session_factory(settings)`.
Both are plain SQLAlchemy sessions over the same models, so domain services take a `Session` and
never care which. This module imports no Flask: the edge and the workers load it.
"""

from __future__ import annotations

import threading
import time
import weakref
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from .settings import normalise_database_url


def libpq_url(database_url: str) -> str:
    """The URL for psycopg itself (no SQLAlchemy driver name), for connections outside a pool."""
    return make_url(normalise_database_url(database_url)).set(drivername="postgresql").render_as_string(
        hide_password=False
    )


ENGINE_OPTIONS: dict[str, Any] = {
    # Errors must not print bound values: target URLs carry customers' passwords.
    "hide_parameters": True,
    # Not pool_pre_ping: a round trip on every checkout cost the partner API a tenth of its
    # throughput (bench/provision.py); `ping_idle_connections` pings only what sat unused.
    "pool_pre_ping": False,
}

WEB_POOL: dict[str, Any] = {"pool_size": 5, "max_overflow": 0}
"""The web process's pool in each gunicorn worker. Its gevent workers take every request at once,
so the pool, not a thread count, bounds the database connections (WEB_CONCURRENCY x 5); a request
beyond it waits for a pooled connection instead of opening an overflow one that is closed again
after one use (in bench/provision.py that meant a new PostgreSQL backend for most provisions)."""

CONNECT_TIMEOUT = 5
"""Seconds a connection of its own (outside a pool) may take to open: a dead host must not stall
the SMTP edge's history writer or route listener for the operating system's TCP timeout."""

ENGINE_OPTIONS["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
"""Pooled connections too: a database host that takes the connection and never answers would
otherwise hold a web request for ever instead of answering 503 (Heroku gives up at 25 s)."""

IDLE_PING_AFTER = 10.0
"""Seconds a pooled connection may sit unused before it is checked at its next checkout."""


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    engine = create_engine(
        normalise_database_url(database_url), pool_size=pool_size, max_overflow=10, **ENGINE_OPTIONS
    )
    ping_idle_connections(engine)
    return engine


def ping_idle_connections(engine: Engine) -> None:
    """Check a connection that sat in the pool for IDLE_PING_AFTER seconds before handing it out;
    a dead one (server restarted, idle connection cut by a proxy) is replaced, so the request that
    gets it never sees the failure. A connection in steady use is handed out as is: if the server
    went away in the last seconds, that one request fails and SQLAlchemy then drops the whole pool."""
    if event.contains(engine, "checkout", _check_if_idle):
        return
    event.listen(engine, "checkin", _mark_idle)
    event.listen(engine, "checkout", _check_if_idle)


def _mark_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _check_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.pop("idle_since", None)
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER:
        return
    try:
        _ping(dbapi_connection)
    except Exception as exc:
        raise DisconnectionError("pooled connection found dead after sitting idle") from exc


def _ping(dbapi_connection: Any) -> None:
    """SELECT 1 outside any transaction (as SQLAlchemy's own pre-ping does for psycopg)."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute("SELECT 1")
    finally:
        if not dbapi_connection.closed:
            dbapi_connection.autocommit = autocommit


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means PostgreSQL is out of reach for now rather than that the request or the
    code is wrong: the server is down or restarting, the connection broke, no connection could be
    had (pool exhausted, too many clients), or the server gave up the statement (a lock or
    statement timeout, a serialization failure). psycopg files all of these, and only these, under
    OperationalError; its errors reach us wrapped by SQLAlchemy or, from statements sent to the
    driver directly (new_resource), bare."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return isinstance(exc.orig, psycopg.OperationalError)
    return isinstance(exc, psycopg.OperationalError)


@lru_cache(maxsize=8)
def _factory(database_url: str, pool_size: int) -> sessionmaker[Session]:
    return sessionmaker(bind=make_engine(database_url, pool_size=pool_size), expire_on_commit=False)


def session_factory(database_url: str, *, pool_size: int = 5) -> sessionmaker[Session]:
    """One engine (and connection pool) per URL per process, created on first use."""
    return _factory(database_url, pool_size)


SIDE_POOL_SIZE = 2
_side_engines: dict[str, Engine] = {}
_side_lock = threading.Lock()
_side_of: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
"""Each engine's side engine once found: rendering the URL (the key above) cost the outbound
accept batch 50 us each time."""


def side_engine(engine: Engine) -> Engine:
    """A small fixed pool of its own beside `engine`'s, for one short statement committed on its
    own while a connection of `engine`'s pool is held (the outbound quota). Taking a second
    connection from the same pool would deadlock once every request holds one and waits for
    another (the web's pools have no overflow); a holder of a side connection waits for nothing.

    Its connections autocommit, without waiting for the disk (`synchronous_commit = off`, set once
    per connection): one round trip a statement instead of three (SET LOCAL, the statement,
    COMMIT). What is committed there is made durable by the caller's own synchronous commit that
    follows (PostgreSQL flushes its log in order)."""
    found = _side_of.get(engine)
    if found is not None:
        return found
    key = engine.url.render_as_string(hide_password=False)
    found = _side_engines.get(key)
    if found is None:
        with _side_lock:
            found = _side_engines.get(key)
            if found is None:
                # No pre-ping (a round trip per use): the side pool sees no error of its own in an
                # outage (the request's connection fails first), so its first statement after
                # PostgreSQL came back may meet a dead connection; its one caller retries that
                # once on a new one (`sending._take_from_quota`).
                found = _side_engines[key] = create_engine(
                    engine.url, pool_size=SIDE_POOL_SIZE, max_overflow=0, isolation_level="AUTOCOMMIT",
                    **ENGINE_OPTIONS,
                )
                ping_idle_connections(found)
                event.listen(found, "connect", _commit_without_waiting)
    _side_of[engine] = found
    return found


def _commit_without_waiting(dbapi_connection: Any, _record: Any) -> None:
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute("SET synchronous_commit = off")
    finally:
        dbapi_connection.autocommit = autocommit
