"""`python -m workers`: the Procfile's worker process (`workers.worker.Worker`, with RQ's
scheduler for retries and the sweep)."""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue

from provider.settings import get_settings
from provider.tasks import QUEUES
from workers.worker import Worker


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    connection = Redis.from_url(settings.redis_url)
    queues = [Queue(name, connection=connection) for name in QUEUES]
    # Its first heartbeat schedules the sweep, and every later one restores it if Redis lost it.
    Worker(queues, connection=connection, sweep_interval=settings.sweep_interval).work(with_scheduler=True)


if __name__ == "__main__":
    main()
