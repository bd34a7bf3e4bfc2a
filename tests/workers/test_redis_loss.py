"""The real worker process (`python -m workers`, as the Procfile runs it) against the embedded
Redis and PostgreSQL and the Heroku stand-in, when Redis loses everything (FLUSHALL) while it runs."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rq import Queue
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry

from provider.models import Resource
from provider.plans import plan_named
from provider.services.partner_requests import OAuthGrant, ProvisionRequest
from provider.services.provisioning import config_for, provision
from provider.settings import Settings
from provider.tasks import DEFAULT_QUEUE, PROVISIONING_QUEUE, RqJobQueue, redis_connection
from tests.conftest import REPO_ROOT
from tests.heroku_side import SeededAddon, seed_addon
from tests.heroku_standin.faults import inject_fault
from tests.test_procfile import procfile

SWEEP_INTERVAL = 5
# What the jobs themselves take on a shared, loaded machine, beyond the sweep's own wait.
JOB_MARGIN = 10.0


def _worker_env(settings: Settings) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "ENCRYPTION_KEY": settings.encryption_key,
        "HEROKU_OAUTH_CLIENT_SECRET": settings.oauth_client_secret,
        "HEROKU_API_URL": settings.heroku_api_url,
        "HEROKU_ID_URL": settings.heroku_id_url,
        "INBOUND_DOMAIN": settings.inbound_domain,
        "SMTP_PUBLIC_HOST": settings.smtp_public_host,
        "SMTP_PUBLIC_PORT": str(settings.smtp_public_port),
        "SWEEP_INTERVAL": str(SWEEP_INTERVAL),
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def worker(heroku: tuple[object, Settings]) -> Iterator[subprocess.Popen[str]]:
    _, settings = heroku
    process = subprocess.Popen(
        ["bash", "-c", f"exec {procfile()['worker']}"], cwd=REPO_ROOT, env=_worker_env(settings),
        text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)  # a warm shutdown ends its scheduler process too
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the worker and its children
            output, _ = process.communicate(timeout=30)
        print(output[-5000:])  # shown by pytest when the test failed


def _wait_for(
    what: str, condition: Callable[[], bool], worker: subprocess.Popen[str], seconds: float
) -> None:
    """Poll until `condition`, for at most `seconds`, while the worker keeps running."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, f"not within {seconds:.0f} s: {what}"
        time.sleep(0.2)


def _provision_async(db_session, settings: Settings, seeded: SeededAddon) -> None:
    provision(db_session, dataclasses.replace(settings, provisioning_mode="async"), ProvisionRequest(
        uuid=seeded.id, plan=plan_named("starter"), log_input_url=seeded.log_input_url,
        oauth_grant=OAuthGrant(seeded.grant_code, seeded.grant_expires_at), target="https://example.com/in",
    ), RqJobQueue(settings.redis_url))


def test_provisions_whose_jobs_a_flushall_lost_complete_within_two_sweep_periods_without_a_restart(
    heroku, db_session, redis, worker
):
    running, settings = heroku
    connection = redis_connection(settings.redis_url)
    scheduled = {name: ScheduledJobRegistry(queue=Queue(name, connection=connection))
                 for name in (DEFAULT_QUEUE, PROVISIONING_QUEUE)}
    _wait_for("the worker schedules the sweep", lambda: len(scheduled[DEFAULT_QUEUE]) > 0, worker, 60)

    # One provision's first attempt fails, and its retry waits ten minutes in Redis.
    retried = seed_addon(running, "retried")
    inject_fault(running.url, f"/addons/{retried.id}/config", 503, method="PATCH",
                 headers={"Retry-After": "600"})
    _provision_async(db_session, settings, retried)
    _wait_for("its first attempt schedules the retry", lambda: len(scheduled[PROVISIONING_QUEUE]) > 0,
              worker, 30)
    # Another one's job waits in the queue behind a busy worker.
    busy = Queue(PROVISIONING_QUEUE, connection=connection).enqueue("time.sleep", 3)
    _wait_for("the worker is busy", lambda: busy.get_status(refresh=True) == "started", worker, 30)
    queued = seed_addon(running, "queued")
    _provision_async(db_session, settings, queued)
    assert [job.func_name for job in Queue(PROVISIONING_QUEUE, connection=connection).jobs] == [
        "workers.jobs.provisioning.complete_provisioning"
    ]

    redis.flushall()  # the retry, the queued job and the sweep's schedule are gone

    def provisioned() -> bool:
        # The stand-in hears of the provision before the job commits its own row: wait for both.
        db_session.expire_all()
        return all(
            running.inspect().addon(a.id)["state"] == "provisioned"
            and getattr(db_session.get(Resource, a.id), "state", None) == "provisioned"
            for a in (retried, queued)
        )

    _wait_for("both provisions complete", provisioned, worker, 2 * SWEEP_INTERVAL + JOB_MARGIN)
    for addon in (retried, queued):
        resource = db_session.get(Resource, addon.id)
        assert resource is not None and resource.state == "provisioned"
        assert running.inspect().addon(addon.id)["config"] == config_for(db_session, settings, resource)
    # Their app log lines, whose shipping requests Redis lost too, reach the app's log.
    for addon in (retried, queued):
        received = running.inspect().logs(addon=addon.id, at_least=2, timeout=JOB_MARGIN)
        assert [line["message"] for line in received] == [
            "cloudmailin: provisioning plan=starter", "cloudmailin: provisioned plan=starter"
        ]
    # And the sweep's own schedule is back: a scheduled sweep runs again.
    finished = FinishedJobRegistry(queue=Queue(DEFAULT_QUEUE, connection=connection))
    _wait_for("a scheduled sweep runs", lambda: any(
        job_id.startswith("cloudmailin-sweep-") for job_id in finished.get_job_ids()
    ), worker, 2 * SWEEP_INTERVAL + JOB_MARGIN)
