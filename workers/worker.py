"""The worker class `python -m workers` runs: RQ's HerokuWorker that also keeps the sweep alive.

HerokuWorker turns Heroku's SIGTERM into a warm shutdown: the running job gets the dyno's grace
period to finish instead of being killed mid-delivery.

The sweep's schedule lives in Redis, which may lose it (DESIGN.md decision 3: Redis holds nothing
PostgreSQL lacks), so no single process may be the only one that restores it. Every worker checks
it on its heartbeat, at most every `CHECK_EVERY` seconds (one Redis round trip), and restores it
(`workers.jobs.sweep.keep_scheduled`). An idle worker's heartbeat comes once per dequeue timeout
(RQ's default is minutes), so the timeout is shortened to the check period; while a job runs,
RQ's monitoring loop (every `job_monitoring_interval`, 30 s) checks too.
"""

from __future__ import annotations

import math
import time
from typing import Any

from redis import RedisError
from redis.client import Pipeline
from rq.executions import Execution
from rq.job import Job
from rq.worker import HerokuWorker

from workers.jobs.sweep import keep_scheduled

CHECK_EVERY = 5.0


class Worker(HerokuWorker):
    # A default, because RQ rebuilds workers from Redis with only its own arguments (`Worker.all`).
    def __init__(self, *args: Any, sweep_interval: int = 60, **kwargs: Any) -> None:
        self.sweep_interval = sweep_interval
        self.check_every = min(CHECK_EVERY, float(sweep_interval))
        self._checked_at = -math.inf
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:
        return max(1, min(super().dequeue_timeout, math.ceil(self.check_every)))

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None:  # a heartbeat queued in RQ's own transaction is no place for it
            self.keep_sweep_scheduled()

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        super().maintain_heartbeats(job, execution)
        self.keep_sweep_scheduled()

    def keep_sweep_scheduled(self) -> None:
        started = time.monotonic()
        if started - self._checked_at < self.check_every:
            return
        self._checked_at = started
        try:
            done = keep_scheduled(self.connection, self.sweep_interval)
        except RedisError as exc:
            # Redis trouble is the worker loop's to handle (it retries its dequeue); the next
            # heartbeat checks again.
            self.log.warning("could not check the sweep's schedule: %s", exc)
            return
        if done:
            self.log.info("sweep: %s", done)
