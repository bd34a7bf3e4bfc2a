"""App log lines: stored with the caller's transaction; one dispatch per burst of requests, one
shipping job per resource at a time."""

from __future__ import annotations

import ast
import dataclasses
import threading
import time
from pathlib import Path

from rq import Queue
from sqlalchemy import func, select

from provider import log_shipping_queue
from provider.crypto import SecretBox
from provider.jobs import use_queue
from provider.models import AppLogLine, Resource
from provider.services import applog, applog_lines
from provider.tasks import DISPATCH_SHIPPING_JOB, LOGS_QUEUE, SHIP_LOGS_JOB, redis_connection
from tests.logjobs import dispatch

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


DISPATCH = (DISPATCH_SHIPPING_JOB, ())
SHIP = (SHIP_LOGS_JOB, (RID,))


def test_lines_are_shipped_by_one_job_enqueued_after_commit(settings, db_session):
    _resource(db_session, settings)
    applog.record(db_session, settings, RID, "cloudmailin: one")
    applog.record(db_session, settings, RID, "cloudmailin: two")
    assert _jobs(settings) == []
    db_session.commit()
    assert _jobs(settings) == [DISPATCH]
    assert dispatch(settings) == "1 resources asked, 1 shipping jobs enqueued"
    assert _jobs(settings) == [SHIP]
    assert _lines(db_session) == 2


def test_a_burst_over_several_transactions_still_makes_one_job(settings, db_session):
    _resource(db_session, settings)
    for n in range(5):
        applog.record(db_session, settings, RID, f"cloudmailin: line {n}")
        db_session.commit()
    assert _jobs(settings) == [DISPATCH]
    dispatch(settings)
    applog.record(db_session, settings, RID, "cloudmailin: after the dispatch")
    db_session.commit()
    dispatch(settings)
    assert _jobs(settings) == [SHIP]  # the shipping job still pending takes the later line too
    assert _lines(db_session) == 6


def test_many_resources_asking_at_once_cost_one_dispatch_and_a_job_each(settings, db_session):
    ids = [f"11111111-2222-3333-4444-{n:012d}" for n in range(3)]
    box = SecretBox(settings.encryption_key)
    for rid in ids:
        db_session.add(Resource(id=rid, plan="free", state="provisioned", options={},
                                log_input_url_enc=box.encrypt("http://token:t.x@127.0.0.1:9/logs")))
    db_session.commit()
    for rid in ids:
        applog.record(db_session, settings, rid, "cloudmailin: hello")
    db_session.commit()
    assert _jobs(settings) == [DISPATCH]
    dispatch(settings)
    assert sorted(_jobs(settings)) == [(SHIP_LOGS_JOB, (rid,)) for rid in ids]


def test_a_request_arriving_while_the_dispatch_ends_is_not_lost(settings, db_session, redis):
    _resource(db_session, settings)
    applog.record(db_session, settings, RID, "cloudmailin: racing")
    db_session.commit()
    # The dispatch took everything and found the set empty, then this request came in before it
    # released its mark: the request saw the mark and enqueued nothing.
    assert log_shipping_queue.take_pending(settings.redis_url, 10) == [RID]
    redis.sadd(log_shipping_queue.PENDING_KEY, RID)
    assert log_shipping_queue.end_dispatch(settings.redis_url) is True  # it looks again and keeps serving
    assert log_shipping_queue.take_pending(settings.redis_url, 10) == [RID]
    assert log_shipping_queue.end_dispatch(settings.redis_url) is False
    assert not redis.exists(log_shipping_queue.DISPATCH_MARK_KEY)


def test_a_rolled_back_event_leaves_no_line_and_no_job(settings, db_session):
    _resource(db_session, settings)
    applog.record(db_session, settings, RID, "cloudmailin: never happened")
    db_session.rollback()
    db_session.commit()
    assert _jobs(settings) == []
    assert _lines(db_session) == 0
    assert not redis_connection(settings.redis_url).exists(log_shipping_queue.DISPATCH_MARK_KEY)


def test_a_rolled_back_savepoint_keeps_the_lines_committed_before_it(settings, db_session):
    _resource(db_session, settings)
    applog.record(db_session, settings, RID, "cloudmailin: kept")
    try:
        with db_session.begin_nested():
            applog.record(db_session, settings, RID, "cloudmailin: undone")
            raise RuntimeError("the courtesy failed")
    except RuntimeError:
        pass
    db_session.commit()
    assert _lines(db_session) == 1
    assert _jobs(settings) == [DISPATCH]


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


def test_background_asks_return_at_once_and_ask_for_the_ids_given_meanwhile_together():
    asked, first_in_flight, release = [], threading.Event(), threading.Event()

    def ask(ids):
        asked.append(ids)
        if len(asked) == 1:
            first_in_flight.set()
            assert release.wait(10)

    asks = log_shipping_queue.BackgroundAsks(ask)
    asks.add(["a"])
    assert first_in_flight.wait(10)
    asks.add(["c", "b"])  # returns while the first ask is still on its way
    asks.add(["b"])
    assert asked == [["a"]]
    release.set()
    _wait_for(lambda: len(asked) == 2)
    assert asked == [["a"], ["b", "c"]]


def test_a_failed_background_ask_leaves_the_next_ids_asked_for():
    asked = []

    def ask(ids):
        asked.append(ids)
        if len(asked) == 1:
            raise RuntimeError("Redis said no")

    asks = log_shipping_queue.BackgroundAsks(ask)
    asks.add(["a"])
    _wait_for(lambda: len(asked) == 1)
    _wait_for(lambda: not asks._running)  # the failed ask's thread has ended
    asks.add(["b"])
    _wait_for(lambda: len(asked) == 2)
    assert asked == [["a"], ["b"]]


def test_in_the_background_mode_a_committed_line_is_asked_for_after_the_commit(
    settings, db_session, monkeypatch
):
    monkeypatch.setattr(log_shipping_queue, "_background", {})  # what the web's gevent workers choose
    _resource(db_session, settings)
    applog.record(db_session, settings, RID, "cloudmailin: asked off the request")
    assert _jobs(settings) == []
    db_session.commit()
    _wait_for(lambda: _jobs(settings) == [DISPATCH])
    assert dispatch(settings) == "1 resources asked, 1 shipping jobs enqueued"


def _wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within 10 s"
        time.sleep(0.01)


def test_a_new_job_is_enqueued_once_the_previous_one_cleared_its_mark(settings, db_session):
    _resource(db_session, settings)
    applog.record(db_session, settings, RID, "cloudmailin: first")
    db_session.commit()
    dispatch(settings)
    log_shipping_queue.clear_mark(settings.redis_url, RID)
    applog.record(db_session, settings, RID, "cloudmailin: second")
    db_session.commit()
    dispatch(settings)
    assert _jobs(settings) == [SHIP, SHIP]


def test_app_log_lines_are_spelled_only_in_applog_lines():
    """Customers grep these lines: a site writing its own "cloudmailin: ..." text would drift
    from the shape the others share (services/applog_lines.py)."""
    root = Path(__file__).resolve().parents[2]
    home = root / "provider" / "services" / "applog_lines.py"
    written = []
    for package in ("provider", "smtp_edge", "workers"):
        for path in (root / package).rglob("*.py"):
            if path == home:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and str(node.value).startswith(applog_lines.PREFIX):
                    written.append(f"{path.relative_to(root)}:{node.lineno}")
    assert written == []


@dataclasses.dataclass
class _RecordingQueue:
    """A `JobQueue` of the test's own: what a service hands over, in order."""

    redis_url: str
    handed: list[tuple[str, object]] = dataclasses.field(default_factory=list)

    def enqueue_after_commit(self, session, job):
        self.handed.append(("job", job.func))

    def enqueue(self, job):
        self.handed.append(("now", job.func))

    def ship_logs_after_commit(self, session, resource_id):
        self.handed.append(("ship", resource_id))


def test_services_reach_the_queue_only_through_the_process_job_queue(settings, db_session):
    """A process that chooses another `JobQueue` (provider/jobs.py `use_queue`) gets every request
    for shipping; RQ sees nothing."""
    made: list[_RecordingQueue] = []

    def make(redis_url):
        made.append(_RecordingQueue(redis_url))
        return made[-1]

    use_queue(make)
    try:
        _resource(db_session, settings)
        applog.record(db_session, settings, RID, "cloudmailin: through the seam")
        db_session.commit()
    finally:
        use_queue(None)
    assert [q.handed for q in made] == [[("ship", RID)]]
    assert made[0].redis_url == settings.redis_url
    assert _jobs(settings) == []
    assert _lines(db_session) == 1
