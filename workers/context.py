"""Settings and database sessions for jobs, which run outside Flask.

RQ calls a job with its ids only, so the job finds its configuration here: the process settings,
or the ones a test installed with `use_settings` (tests run jobs in-process against their own
database and stand-ins).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from provider.db import session_factory
from provider.settings import Settings, get_settings

_override: list[Settings] = []


def use_settings(settings: Settings | None) -> Settings | None:
    """Make jobs in this process use `settings` (None: back to the environment's); returns the
    settings installed before, if any, for a caller that puts them back."""
    previous = _override[0] if _override else None
    _override.clear()
    if settings is not None:
        _override.append(settings)
    return previous


def job_settings() -> Settings:
    return _override[0] if _override else get_settings()


@contextmanager
def job_session(settings: Settings) -> Iterator[Session]:
    """A plain session that rolls back whatever the job left uncommitted."""
    session = session_factory(settings.database_url)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
