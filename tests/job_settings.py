"""Jobs run in-process by tests, with the test's settings (workers.context.use_settings)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from provider.settings import Settings
from workers.context import use_settings


@contextmanager
def settings_in_use(settings: Settings) -> Iterator[None]:
    """Run jobs with `settings` inside the block, then go back to what was in use before."""
    previous = use_settings(settings)
    try:
        yield
    finally:
        use_settings(previous)
