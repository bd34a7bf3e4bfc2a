from rq import Queue

from provider.models import Resource
from provider.tasks import Job, enqueue_after_commit, redis_connection


def _queued(settings):
    return Queue("default", connection=redis_connection(settings.redis_url)).job_ids


def test_job_is_enqueued_only_once_the_transaction_commits(settings, db_session):
    db_session.add(Resource(id="00000000-0000-0000-0000-000000000001", plan="free"))
    enqueue_after_commit(db_session, settings.redis_url, Job("builtins.print", ("x",)))
    assert _queued(settings) == []
    db_session.commit()
    assert len(_queued(settings)) == 1


def test_job_is_dropped_when_the_transaction_rolls_back(settings, db_session):
    db_session.add(Resource(id="00000000-0000-0000-0000-000000000002", plan="free"))
    enqueue_after_commit(db_session, settings.redis_url, Job("builtins.print", ("x",)))
    db_session.rollback()
    db_session.commit()
    assert _queued(settings) == []
