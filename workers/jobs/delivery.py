"""The delivery worker's jobs: `deliver_message` (enqueued after a message is accepted) and
`drain` (enqueued by the worker's own poller when recipients are due and no job is waiting).

Both run one `Engine.run` on the process's event loop, whose SMTP connections stay open between
jobs. That only works in a worker that does not fork per job (`workers.delivery.worker`).

A `deliver_message` job is enqueued only when no delivery job of its queue is waiting (the wake
flags of `provider.tasks.wake_once`); each run clears the flags before it claims, and wakes a
`drain` for another worker whenever a claim comes back full, so a burst is shared by all workers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from provider.db import session_factory
from provider.dns import make_resolver
from provider.settings import Settings
from provider.tasks import DRAIN_JOB, OUTBOUND_QUEUES, Job, clear_wake_flags, redis_connection, wake_once
from workers.context import job_settings
from workers.delivery.dkim import DkimSigner
from workers.delivery.engine import Engine
from workers.delivery.mx import MxResolver, smarthost
from workers.delivery.transport import ConnectionPool

log = logging.getLogger(__name__)

JOB_BUDGET = 10.0
"""Seconds one job delivers before it hands the rest to a new job: a warm shutdown (SIGTERM,
Heroku's 30 s) then never waits for more than one budget."""


@dataclass
class Runtime:
    settings: Settings
    loop: asyncio.AbstractEventLoop
    engine: Engine


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The process's loop and engine, built on the first job (and again if settings changed)."""
    global _runtime
    settings = job_settings()
    if _runtime is None or _runtime.settings is not settings:
        if _runtime is not None:
            close_runtime()
        loop = asyncio.new_event_loop()
        sessions = session_factory(settings.database_url)
        engine = Engine(
            sessions,
            ConnectionPool(settings.smtp_hostname, command_timeout=settings.outbound_command_timeout),
            MxResolver(
                make_resolver(settings.dns_nameservers),
                smarthost(settings.outbound_smarthost),
                port=settings.outbound_mx_port,
            ),
            settings.bounce_domain,
            timedelta(seconds=settings.outbound_lease_seconds),
            sign=DkimSigner(settings),
        )
        _runtime = Runtime(settings, loop, engine)
    return _runtime


def close_runtime() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.loop.run_until_complete(_runtime.engine.pool.close())
        _runtime.loop.close()
        _runtime = None


def _wake_drain(redis_url: str) -> None:
    wake_once(redis_url, Job(DRAIN_JOB, (), queue=OUTBOUND_QUEUES["standard"]))


def _run(first: uuid.UUID | None) -> dict[str, Any]:
    rt = runtime()
    redis_url = rt.settings.redis_url
    try:
        clear_wake_flags(redis_connection(redis_url))
    except Exception:
        # The flags expire by themselves (WAKE_TTL); until then the poller wakes runs.
        log.warning("could not clear the delivery wake flags", exc_info=True)
    report = rt.loop.run_until_complete(
        rt.engine.run(first, budget=JOB_BUDGET, more_due=lambda: _wake_drain(redis_url))
    )
    if report.more:
        _wake_drain(redis_url)
    return {"attempted": report.attempted, "delivered": report.delivered, "more": report.more}


def deliver_message(message_id: str) -> dict[str, Any]:
    """Deliver the message's due recipients first, then whatever else is due."""
    return _run(uuid.UUID(message_id))


def drain() -> dict[str, Any]:
    return _run(None)
