"""The periodic sweep finds work whose job Redis lost, from what PostgreSQL says is unfinished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select, update

from provider.crypto import SecretBox
from provider.models import AppLogLine, Resource
from provider.models.resource import DEPROVISIONED, PROVISIONED, PROVISIONING
from provider.tasks import (
    COMPLETE_PROVISIONING_JOB,
    DEFAULT_QUEUE,
    DEPROVISION_ACTION_JOB,
    LOGS_QUEUE,
    PROVISIONING_QUEUE,
    SWEEP_JOB,
    redis_connection,
)
from workers.jobs.sweep import (
    DEPROVISION_STUCK_AFTER,
    STUCK_AFTER,
    keep_scheduled,
    next_slot,
    schedule_next,
    sweep,
    sweep_once,
)

NOW = datetime(2026, 11, 25, 12, 2, 30, tzinfo=UTC)
INTERVAL = 60


def _resource(db_session, settings, rid: str, state: str, *, touched: datetime) -> None:
    db_session.add(Resource(
        id=rid, plan="free", state=state, options={},
        log_input_url_enc=SecretBox(settings.encryption_key).encrypt("http://token:t@127.0.0.1:9/logs"),
    ))
    db_session.commit()
    db_session.execute(update(Resource).where(Resource.id == rid).values(updated_at=touched))
    db_session.commit()


def _queued(settings, queue: str) -> list[tuple[str, tuple]]:
    return [(j.func_name, j.args) for j in Queue(queue, connection=redis_connection(settings.redis_url)).jobs]


def test_provisioning_nobody_touched_for_longer_than_any_retry_wait_is_picked_up_again(settings, db_session):
    stuck, live = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
    _resource(db_session, settings, stuck, PROVISIONING, touched=NOW - STUCK_AFTER - timedelta(minutes=1))
    _resource(db_session, settings, live, PROVISIONING, touched=NOW - STUCK_AFTER + timedelta(minutes=5))
    done = "00000000-0000-0000-0000-00000000000c"
    _resource(db_session, settings, done, PROVISIONED, touched=NOW - timedelta(days=1))
    assert sweep_once(db_session, settings, now=NOW)["provisioning"] == 1
    assert _queued(settings, PROVISIONING_QUEUE) == [(COMPLETE_PROVISIONING_JOB, (stuck,))]


def test_unshipped_lines_get_one_shipping_job_however_often_the_sweep_runs(settings, db_session):
    rid = "00000000-0000-0000-0000-00000000000d"
    _resource(db_session, settings, rid, PROVISIONED, touched=NOW)
    db_session.add(AppLogLine(resource_id=rid, message="lost job", created_at=NOW - timedelta(minutes=10)))
    db_session.add(AppLogLine(resource_id=rid, message="just now", created_at=NOW))
    db_session.commit()
    assert sweep_once(db_session, settings, now=NOW)["log_shipping"] == 1
    assert sweep_once(db_session, settings, now=NOW)["log_shipping"] == 0
    assert _queued(settings, LOGS_QUEUE) == [("workers.jobs.logs.ship_logs", (rid,))]


def test_fresh_unshipped_lines_are_left_to_the_job_recording_enqueued(settings, db_session):
    rid = "00000000-0000-0000-0000-00000000000e"
    _resource(db_session, settings, rid, PROVISIONED, touched=NOW)
    db_session.add(AppLogLine(resource_id=rid, message="just now", created_at=NOW - timedelta(seconds=10)))
    db_session.commit()
    assert sweep_once(db_session, settings, now=NOW)["log_shipping"] == 0


def test_shipped_lines_are_deleted_after_a_day(settings, db_session):
    rid = "00000000-0000-0000-0000-00000000000f"
    _resource(db_session, settings, rid, PROVISIONED, touched=NOW)
    db_session.add(AppLogLine(resource_id=rid, message="old", created_at=NOW - timedelta(days=2),
                              shipped_at=NOW - timedelta(days=2)))
    db_session.add(AppLogLine(resource_id=rid, message="recent", created_at=NOW - timedelta(hours=1),
                              shipped_at=NOW - timedelta(hours=1)))
    db_session.commit()
    assert sweep_once(db_session, settings, now=NOW)["purged_log_lines"] == 1
    assert db_session.scalars(select(AppLogLine.message)).all() == ["recent"]


def test_long_deprovisioned_resources_are_purged(settings, db_session):
    rid = "00000000-0000-0000-0000-000000000010"
    _resource(db_session, settings, rid, DEPROVISIONED, touched=NOW)
    db_session.execute(update(Resource).values(deprovisioned_at=NOW - timedelta(days=30)))
    db_session.commit()
    assert sweep_once(db_session, settings, now=NOW)["purged_resources"] == 1
    assert db_session.scalar(select(func.count()).select_from(Resource)) == 0


def test_the_next_sweep_is_scheduled_once_per_slot_however_many_workers_start(settings):
    connection = redis_connection(settings.redis_url)
    assert schedule_next(connection, INTERVAL, now=NOW) is True
    assert schedule_next(connection, INTERVAL, now=NOW + timedelta(seconds=20)) is False
    registry = ScheduledJobRegistry(queue=Queue(DEFAULT_QUEUE, connection=connection))
    (job_id,) = registry.get_job_ids()
    assert registry.get_scheduled_time(job_id) == next_slot(NOW, INTERVAL)


@pytest.mark.parametrize("interval", [1, 7, 60])
def test_slots_are_aligned_and_strictly_in_the_future(interval):
    slot = next_slot(NOW, interval)
    assert NOW < slot <= NOW + timedelta(seconds=interval)
    assert next_slot(slot, interval) == slot + timedelta(seconds=interval)


def test_the_sweep_job_runs_and_schedules_its_successor(heroku, settings):
    counts = sweep()
    assert counts["provisioning"] == 0
    connection = redis_connection(settings.redis_url)
    assert len(ScheduledJobRegistry(queue=Queue(DEFAULT_QUEUE, connection=connection))) == 1


def _default_jobs(connection) -> list[tuple[str, dict]]:
    return [(j.func_name, j.kwargs) for j in Queue(DEFAULT_QUEUE, connection=connection).jobs]


def _scheduled_times(connection) -> list[datetime]:
    registry = ScheduledJobRegistry(queue=Queue(DEFAULT_QUEUE, connection=connection))
    return [registry.get_scheduled_time(job_id) for job_id in registry.get_job_ids()]


def test_workers_finding_redis_emptied_enqueue_one_recovery_sweep_and_one_schedule_between_them(settings):
    connection = redis_connection(settings.redis_url)
    done = [keep_scheduled(connection, INTERVAL, now=NOW + timedelta(seconds=n)) for n in range(3)]
    assert done == ["recovery sweep enqueued, sweep scheduled", None, None]
    assert _default_jobs(connection) == [(SWEEP_JOB, {"recovery": True})]
    assert _scheduled_times(connection) == [next_slot(NOW, INTERVAL)]


def test_a_lost_schedule_is_restored_without_a_recovery_sweep_while_redis_kept_its_data(settings):
    connection = redis_connection(settings.redis_url)
    keep_scheduled(connection, INTERVAL, now=NOW)
    Queue(DEFAULT_QUEUE, connection=connection).empty()
    registry = ScheduledJobRegistry(queue=Queue(DEFAULT_QUEUE, connection=connection))
    for job_id in registry.get_job_ids():
        registry.remove(job_id, delete_job=True)
    later = NOW + timedelta(seconds=INTERVAL)  # the scheduled sweep ran, and never scheduled its successor
    assert keep_scheduled(connection, INTERVAL, now=later) == "sweep scheduled"
    assert _default_jobs(connection) == []
    assert _scheduled_times(connection) == [next_slot(later, INTERVAL)]


def test_a_recovery_sweep_re_enqueues_unfinished_work_however_recently_it_was_touched(settings, db_session):
    retrying, fresh = "00000000-0000-0000-0000-000000000011", "00000000-0000-0000-0000-000000000012"
    _resource(db_session, settings, retrying, PROVISIONING, touched=NOW - timedelta(minutes=1))
    _resource(db_session, settings, fresh, PROVISIONING, touched=NOW)
    db_session.add(AppLogLine(resource_id=fresh, message="just now", created_at=NOW))
    db_session.commit()
    assert sweep_once(db_session, settings, now=NOW)["provisioning"] == 0
    counts = sweep_once(db_session, settings, now=NOW + timedelta(seconds=1), recovery=True)
    assert (counts["provisioning"], counts["log_shipping"]) == (2, 1)
    assert _queued(settings, PROVISIONING_QUEUE) == [
        (COMPLETE_PROVISIONING_JOB, (retrying,)), (COMPLETE_PROVISIONING_JOB, (fresh,))
    ]


def test_a_deprovision_action_whose_job_was_lost_is_enqueued_again_once_no_retry_can_be_pending(
    settings, db_session
):
    pending, recent, deleted = (f"00000000-0000-0000-0000-00000000002{n}" for n in range(3))
    for rid, gone_since, tokens in ((pending, DEPROVISION_STUCK_AFTER + timedelta(minutes=1), True),
                                    (recent, timedelta(minutes=1), True),
                                    (deleted, timedelta(days=1), False)):
        _resource(db_session, settings, rid, DEPROVISIONED, touched=NOW - gone_since)
        db_session.execute(update(Resource).where(Resource.id == rid).values(
            deprovisioned_at=NOW - gone_since,
            access_token_enc=b"sealed" if tokens else None, refresh_token_enc=b"sealed" if tokens else None,
        ))
    db_session.commit()
    assert sweep_once(db_session, settings, now=NOW)["deprovision_actions"] == 1
    assert _queued(settings, PROVISIONING_QUEUE) == [(DEPROVISION_ACTION_JOB, (pending,))]
    assert sweep_once(db_session, settings, now=NOW, recovery=True)["deprovision_actions"] == 2
