"""`python -m workers`: the Procfile's worker process.

HerokuWorker turns Heroku's SIGTERM into a warm shutdown: the running job gets the dyno's grace
period to finish instead of being killed mid-delivery.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue
from rq.worker import HerokuWorker

from provider.settings import get_settings
from provider.tasks import QUEUES
from workers.jobs.sweep import schedule_next


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    connection = Redis.from_url(settings.redis_url)
    queues = [Queue(name, connection=connection) for name in QUEUES]
    # The sweep re-enqueues lost work; it reschedules itself, and this starts the chain.
    schedule_next(connection)
    HerokuWorker(queues, connection=connection).work(with_scheduler=True)


if __name__ == "__main__":
    main()
