"""Background work as the domain sees it: the queues, the jobs' names, a job, and the queue it is
handed to (`JobQueue`). No RQ or Redis here: provider/tasks.py holds the RQ implementation
(`RqJobQueue`), so a service states what must run after its commit, not how it gets to a worker
(DESIGN.md decision 3).

A service is handed its queue (`provisioning.provision(..., queue)`) or asks `queue_for(settings)`
for the process's one. That is RQ's unless a process chose another with `use_queue`; RQ's module is
imported on the first call, not when the domain is imported, so the SMTP edge's and the workers'
domain imports load no queue library they do not use (tests/test_layering.py checks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from .settings import Settings

DEFAULT_QUEUE = "default"
PROVISIONING_QUEUE = "provisioning"
LOGS_QUEUE = "logs"
QUEUES = (PROVISIONING_QUEUE, DEFAULT_QUEUE, LOGS_QUEUE)
OUTBOUND_QUEUES = {"priority": "outbound-priority", "standard": "outbound", "digest": "outbound-digest"}
"""One RQ queue per delivery class; the delivery worker serves them in this order."""

# Every job any process enqueues, by the dotted path RQ imports when it runs the job. The domain
# cannot import the worker modules (they load RQ and the workers' context), so the names live here,
# once; tests/test_tasks.py checks that each one still imports to its function.
EXCHANGE_GRANT_JOB = "workers.jobs.provisioning.exchange_grant"
COMPLETE_PROVISIONING_JOB = "workers.jobs.provisioning.complete_provisioning"
DEPROVISION_ACTION_JOB = "workers.jobs.provisioning.deprovision_action"
SHIP_LOGS_JOB = "workers.jobs.logs.ship_logs"
DISPATCH_SHIPPING_JOB = "workers.jobs.logs.dispatch_shipping"
SWEEP_JOB = "workers.jobs.sweep.sweep"
DELIVER_JOB = "workers.jobs.delivery.deliver_message"
DRAIN_JOB = "workers.jobs.delivery.drain"
POST_EVENTS_JOB = "workers.jobs.events_webhook.post_events"
RESEND_JOB = "workers.jobs.resend.resend_message"
PUSH_CONFIG_JOB = "workers.jobs.config_push.push_config"
JOB_NAMES = (
    EXCHANGE_GRANT_JOB,
    COMPLETE_PROVISIONING_JOB,
    DEPROVISION_ACTION_JOB,
    SHIP_LOGS_JOB,
    DISPATCH_SHIPPING_JOB,
    SWEEP_JOB,
    DELIVER_JOB,
    DRAIN_JOB,
    POST_EVENTS_JOB,
    RESEND_JOB,
    PUSH_CONFIG_JOB,
)


@dataclass
class Job:
    func: str | Callable[..., Any]
    args: tuple[Any, ...]
    queue: str = DEFAULT_QUEUE
    job_id: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)



class QueueUnavailable(Exception):
    """The queue did not take a job handed to it now (`JobQueue.enqueue`)."""


class JobQueue(Protocol):
    """Where a service hands background work. The job is held on `session` and handed over only
    once it commits, and dropped if it rolls back: a worker must never run for rows it cannot see
    yet, or for rows that were never committed."""

    def enqueue_after_commit(self, session: Session, job: Job) -> None: ...

    def enqueue(self, job: Job) -> None:
        """Hand `job` over now, for a caller that has committed and must tell its user whether
        the work was taken; raises `QueueUnavailable` when it was not."""
        ...

    def ship_logs_after_commit(self, session: Session, resource_id: str) -> None:
        """Have the resource's unshipped app log lines shipped once `session` commits (lines are
        rows the caller wrote in that transaction: services/applog.py)."""
        ...


QueueFactory = Callable[[str], JobQueue]
"""Makes the `JobQueue` for a Redis URL (the one setting every queue of this project is named by)."""
_factory: QueueFactory | None = None


def use_queue(factory: QueueFactory | None) -> None:
    """Choose the process's `JobQueue` implementation; None goes back to RQ's."""
    global _factory
    _factory = factory


def queue_for(settings: Settings) -> JobQueue:
    """The process's `JobQueue` for `settings` (RQ on `settings.redis_url` unless `use_queue` said
    otherwise)."""
    factory = _factory
    if factory is None:
        from .tasks import RqJobQueue  # first use: see the module's docstring

        factory = RqJobQueue
    return factory(settings.redis_url)
