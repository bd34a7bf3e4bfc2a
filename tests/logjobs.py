"""Running the app log dispatch job in-process, as a worker would, for tests that follow a line."""

from __future__ import annotations

from rq import Queue

from provider.settings import Settings
from provider.tasks import DISPATCH_SHIPPING_JOB, LOGS_QUEUE, redis_connection
from tests.job_settings import settings_in_use
from workers.jobs.logs import dispatch_shipping


def dispatch(settings: Settings) -> str:
    """Take the queued dispatch job off the logs queue and run it with `settings`."""
    queue = Queue(LOGS_QUEUE, connection=redis_connection(settings.redis_url))
    for job in queue.jobs:
        if job.func_name == DISPATCH_SHIPPING_JOB:
            queue.remove(job)
    with settings_in_use(settings):
        return dispatch_shipping()
