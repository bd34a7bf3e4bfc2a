"""app.json, the Heroku deploy manifest: its formation holds only what Heroku's router can serve."""

from __future__ import annotations

import json

from tests.conftest import REPO_ROOT
from tests.test_procfile import procfile

APP = json.loads((REPO_ROOT / "app.json").read_text())


def test_the_heroku_formation_leaves_the_smtp_process_out() -> None:
    # Dynos get HTTP on $PORT only; senders could never reach an smtp dyno on 25 or 587.
    assert "smtp" not in APP["formation"]
    assert set(APP["formation"]) == {"web", "worker", "delivery"}


def test_every_process_in_the_formation_is_a_procfile_command() -> None:
    assert set(APP["formation"]) <= set(procfile())
