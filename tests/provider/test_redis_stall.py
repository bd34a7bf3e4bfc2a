"""A Redis that takes connections and stops answering (SIGSTOP: a hung server, a fail-over in
progress) costs a partner call bounded time after its commit, within Heroku's 3 s answer limit
(spec/heroku.md), and the committed work stays for the sweep (DESIGN decision 3).

The refusing Redis is covered by test_provision_recovery.py; this is the one that does not refuse.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from dev.services import start_redis
from provider import create_app
from provider.models import Resource
from provider.models.resource import DEPROVISIONED
from provider.settings import Settings

from .partner import provision, send

HEROKU_ANSWER_LIMIT = 3.0  # seconds, spec/heroku.md "Answer within 3 s"


def _answer_within_heroku_s_limit(call: Callable[[], int]) -> int | None:
    answers: list[int] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    thread.join(timeout=HEROKU_ANSWER_LIMIT)
    return answers[0] if answers else None


def test_a_stalled_redis_holds_neither_a_provision_nor_a_deprovision_past_heroku_s_limit(
    settings: Settings, db_session, tmp_path: Path
) -> None:
    redis_url, redis = start_redis(tmp_path / "redis")
    stalled = dataclasses.replace(settings, redis_url=redis_url)
    client = create_app(stalled).test_client()
    resource_uuid = str(uuid.uuid4())
    os.kill(redis.pid, signal.SIGSTOP)
    try:
        # After its commit the sync provision enqueues the grant exchange and asks for log
        # shipping; the deprovision asks for log shipping: each meets the stalled Redis.
        assert _answer_within_heroku_s_limit(
            lambda: provision(client, stalled, resource_uuid=resource_uuid).status_code
        ) == 201
        assert _answer_within_heroku_s_limit(
            lambda: send(client, stalled, "DELETE", f"/heroku/resources/{resource_uuid}").status_code
        ) == 204
    finally:
        os.kill(redis.pid, signal.SIGCONT)
        redis.terminate()
        redis.wait(timeout=30)
    assert db_session.scalar(select(Resource.state).where(Resource.id == resource_uuid)) == DEPROVISIONED
