"""Database access for every process.

The web process uses Flask-SQLAlchemy's request-scoped `db.session` (so Flask-Migrate can run
migrations); the SMTP edge and the workers use `session_factory(settings)`. Both are plain
SQLAlchemy sessions over the same models, so domain services take a `Session` and never care which.
"""

from __future__ import annotations

from functools import lru_cache

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from .models import Base
from .settings import normalise_database_url

db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()


def libpq_url(database_url: str) -> str:
    """The URL for psycopg itself (no SQLAlchemy driver name), for connections outside a pool."""
    return make_url(normalise_database_url(database_url)).set(drivername="postgresql").render_as_string(
        hide_password=False
    )


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    return create_engine(
        normalise_database_url(database_url),
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        # Errors must not print bound values: target URLs carry customers' passwords.
        hide_parameters=True,
    )


@lru_cache(maxsize=8)
def _factory(database_url: str, pool_size: int) -> sessionmaker[Session]:
    return sessionmaker(bind=make_engine(database_url, pool_size=pool_size), expire_on_commit=False)


def session_factory(database_url: str, *, pool_size: int = 5) -> sessionmaker[Session]:
    """One engine (and connection pool) per URL per process, created on first use."""
    return _factory(database_url, pool_size)
