"""Jobs run in-process (called directly, or by RQ's SimpleWorker in burst mode) against the real
database and Redis, with Heroku played by the stand-in on a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from provider.settings import Settings
from tests.heroku_side import heroku_side
from tests.heroku_standin import RunningStandin
from workers.context import use_settings


@pytest.fixture
def heroku(settings: Settings) -> Iterator[tuple[RunningStandin, Settings]]:
    """The stand-in, and settings pointing at it installed for the jobs."""
    with heroku_side(settings) as (running, pointed):
        use_settings(pointed)
        try:
            yield running, pointed
        finally:
            use_settings(None)
