"""App log lines: stored with the caller's transaction, one shipping job per burst."""

from __future__ import annotations

import dataclasses

from rq import Queue
from sqlalchemy import func, select

from provider.crypto import SecretBox
from provider.models import AppLogLine, Resource
from provider.services import applog
from provider.tasks import LOGS_QUEUE, redis_connection

RID = "11111111-2222-3333-4444-555555555555"


def _resource(db_session, settings, *, log_url="http://token:t.x@127.0.0.1:9/logs"):
    resource = Resource(id=RID, plan="free", state="provisioned", options={})
    if log_url:
        resource.log_input_url_enc = SecretBox(settings.encryption_key).encrypt(log_url)
    db_session.add(resource)
    db_session.commit()
    return resource


def _jobs(settings):
    queue = Queue(LOGS_QUEUE, connection=redis_connection(settings.redis_url))
    return [(job.func_name, job.args) for job in queue.jobs]


def _lines(db_session):
    return db_session.scalar(select(func.count()).select_from(AppLogLine))


def test_lines_are_shipped_by_one_job_enqueued_after_commit(settings, db_session):
    _resource(db_session, settings)
    applog.record(db_session, settings, RID, "cloudmailin: one")
    applog.record(db_session, settings, RID, "cloudmailin: two")
    assert _jobs(settings) == []
    db_session.commit()
    assert _jobs(settings) == [("workers.jobs.logs.ship_logs", (RID,))]
    assert _lines(db_session) == 2


def test_a_burst_over_several_transactions_still_makes_one_job(settings, db_session):
    _resource(db_session, settings)
    for n in range(5):
        applog.record(db_session, settings, RID, f"cloudmailin: line {n}")
        db_session.commit()
    assert len(_jobs(settings)) == 1
    assert _lines(db_session) == 5


def test_a_rolled_back_event_leaves_no_line_and_no_job(settings, db_session):
    _resource(db_session, settings)
    applog.record(db_session, settings, RID, "cloudmailin: never happened")
    db_session.rollback()
    db_session.commit()
    assert _jobs(settings) == []
    assert _lines(db_session) == 0
    assert not redis_connection(settings.redis_url).exists(applog.mark_key(RID))


def test_resources_without_a_log_input_url_keep_no_lines(settings, db_session):
    _resource(db_session, settings, log_url=None)
    applog.record(db_session, settings, RID, "cloudmailin: nowhere to go")
    db_session.commit()
    assert _lines(db_session) == 0
    assert _jobs(settings) == []


def test_redis_being_down_never_fails_the_operation_that_logged(settings, db_session):
    _resource(db_session, settings)
    broken = dataclasses.replace(settings, redis_url="redis://127.0.0.1:9/0")
    applog.record(db_session, broken, RID, "cloudmailin: redis is down")
    db_session.commit()
    assert _lines(db_session) == 1


def test_a_new_job_is_enqueued_once_the_previous_one_cleared_its_mark(settings, db_session):
    _resource(db_session, settings)
    applog.record(db_session, settings, RID, "cloudmailin: first")
    db_session.commit()
    applog.clear_mark(settings, RID)
    applog.record(db_session, settings, RID, "cloudmailin: second")
    db_session.commit()
    assert len(_jobs(settings)) == 2
