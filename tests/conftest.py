"""Shared fixtures: real PostgreSQL and Redis for the whole session, a clean slate for every test.

Embedded servers start once per test session (per xdist worker) in a temporary folder unless
DATABASE_URL and REDIS_URL point at running ones. Every test ends by truncating the tables and
flushing Redis, so tests that start real processes (which need committed data) and tests that use
the Flask test client share one simple rule.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import text
from sqlalchemy.orm import Session

from dev.services import S3Server, embedded, start_seaweedfs
from provider import create_app
from provider.crypto import new_encryption_key
from provider.db import session_factory
from provider.models import Base
from provider.settings import Settings, load_settings

# Fixtures of a PostgreSQL of a module's own, which its tests may stop (`outage_db`, `pg`).
pytest_plugins = ["tests.private_postgres"]

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = REPO_ROOT.parent / "shared" / "corpus"


def missing_corpus_error(env: dict[str, str] | os._Environ[str], corpus: Path) -> str | None:
    """Why the run must stop: in CI the corpus tests may not skip themselves silently."""
    if env.get("CI", "").lower() == "true" and not corpus.is_dir():
        return f"CI=true but the real-world corpus is missing at {corpus}: its tests would only skip"
    return None


def pytest_configure(config: pytest.Config) -> None:
    error = missing_corpus_error(os.environ, CORPUS)
    if error:
        raise pytest.UsageError(error)


@pytest.fixture(scope="session")
def service_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    with embedded(tmp_path_factory.mktemp("services"), "cloudmailin_test", temporary=True) as svc:
        yield database_url or svc.database_url, redis_url or svc.redis_url


STORE_BUCKET = "mail-store"
"""The bucket the `s3_server` fixture creates (tests keep apart by prefix)."""


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real SeaweedFS S3 gateway on loopback, started only for the tests that ask for it (once
    per xdist worker: a few seconds), with the bucket `STORE_BUCKET`."""
    server = start_seaweedfs(
        tmp_path_factory.mktemp("seaweedfs"), "test-key-id", secrets.token_hex(16), buckets=(STORE_BUCKET,)
    )
    try:
        yield server
    finally:
        server.stop()


def _test_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ENCRYPTION_KEY": new_encryption_key(),
        "SECRET_KEY": secrets.token_hex(16),
        "HEROKU_ADDON_PASSWORD": secrets.token_hex(16),
        "HEROKU_SSO_SALT": secrets.token_hex(16),
        "HEROKU_OAUTH_CLIENT_SECRET": secrets.token_hex(16),
        "HEROKU_API_URL": "http://127.0.0.1:9",
        "HEROKU_ID_URL": "http://127.0.0.1:9",
        "INBOUND_DOMAIN": "cloudmailin.test",
        "SMTP_PUBLIC_HOST": "127.0.0.1",
        "PUBLIC_URL": "http://localhost",
        "SMTP_BIND_HOST": "127.0.0.1",
        "SMTP_MX_PORT": "0",
        "SMTP_SUBMISSION_PORT": "0",
        "TESTING": "true",
    }


@pytest.fixture(scope="session")
def base_settings(service_urls: tuple[str, str]) -> Settings:
    return load_settings(_test_env(*service_urls))


@pytest.fixture(scope="session")
def migrated(base_settings: Settings) -> Settings:
    """Apply the real Alembic migrations once, as `flask db upgrade` does on release."""
    from flask_migrate import upgrade

    app = create_app(base_settings)
    with app.app_context():
        upgrade()
    return base_settings


@pytest.fixture
def settings(migrated: Settings) -> Settings:
    """Per-test settings; tests change them with `dataclasses.replace(settings, ...)`."""
    return dataclasses.replace(migrated)


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def db_session(settings: Settings) -> Iterator[Session]:
    session = session_factory(settings.database_url)()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def redis(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url)


def _close_app_pools() -> None:
    """Every Flask app a test made (fixtures and `create_app` calls alike) has an engine with its
    own pool; without this, their idle connections pile up over a session until the embedded
    PostgreSQL refuses more ("too many clients already")."""
    from provider.extensions import db

    for app in list(db._app_engines):
        for engine in db._app_engines.get(app, {}).values():
            engine.dispose()


@pytest.fixture(autouse=True)
def _clean_slate(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    _close_app_pools()
    if "migrated" not in request.fixturenames:
        return
    settings: Settings = request.getfixturevalue("migrated")
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with session_factory(settings.database_url)() as session:
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        session.commit()
    Redis.from_url(settings.redis_url).flushdb()
