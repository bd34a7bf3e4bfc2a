"""Shipping app log lines to the log_input_url: the stand-in's logplex receiver, or a counting one."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask, Response, request
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from provider import log_shipping_queue
from provider.heroku_platform import USER_AGENT
from provider.models import AppLogLine
from provider.models.resource import PROVISIONED
from provider.services import applog
from provider.tasks import LOGS_QUEUE, redis_connection
from tests.heroku_side import add_resource, seed_addon
from tests.heroku_standin.faults import inject_fault
from tests.heroku_standin.logplex import parse_frames
from tests.heroku_standin.server import serve_wsgi
from tests.logjobs import dispatch
from workers.jobs.logs import BATCH, LOG_BACKOFF, Drain, ship_logs


def _record(db_session, settings, resource_id: str, *messages: str) -> None:
    for message in messages:
        applog.record(db_session, settings, resource_id, message)
    db_session.commit()
    dispatch(settings)  # as the worker would: the shipping job is then queued (or already pending)


def _lines(db_session, resource_id: str) -> list[AppLogLine]:
    db_session.expire_all()
    return list(db_session.scalars(
        select(AppLogLine).where(AppLogLine.resource_id == resource_id).order_by(AppLogLine.id)
    ))


def _scheduled(settings) -> list[tuple[tuple[Any, ...], datetime]]:
    connection = redis_connection(settings.redis_url)
    registry = ScheduledJobRegistry(queue=Queue(LOGS_QUEUE, connection=connection))
    return [
        (Job.fetch(job_id, connection=connection).args, registry.get_scheduled_time(job_id))
        for job_id in registry.get_job_ids()
    ]


def _queued(settings) -> list[tuple[Any, ...]]:
    return [job.args for job in Queue(LOGS_QUEUE, connection=redis_connection(settings.redis_url)).jobs]


@pytest.fixture
def provisioned(heroku, db_session):
    running, settings = heroku
    seeded = seed_addon(running)
    add_resource(db_session, settings, seeded, state=PROVISIONED)
    return seeded


def test_lines_arrive_in_the_apps_log_as_logplex_frames(heroku, db_session, provisioned):
    running, settings = heroku
    _record(db_session, settings, provisioned.id, "cloudmailin: provisioned plan=starter",
            "cloudmailin: inbound from=a@b to=x@y\nstatus=201")
    assert ship_logs(provisioned.id) == "shipped 2, dropped 0"
    received = running.inspect().logs(addon=provisioned.id, at_least=2)
    assert [line["message"] for line in received] == [
        "cloudmailin: provisioned plan=starter", "cloudmailin: inbound from=a@b to=x@y status=201",
    ]
    first = received[0]
    assert (first["priority"], first["hostname"], first["app_field"], first["procid"]) == (
        190, "host", "app", "cloudmailin",
    )
    assert first["user_agent"] == USER_AGENT
    assert all(line.shipped_at is not None for line in _lines(db_session, provisioned.id))
    assert not redis_connection(settings.redis_url).exists(log_shipping_queue.mark_key(provisioned.id))


def test_shipped_lines_are_not_sent_again(heroku, db_session, provisioned):
    running, settings = heroku
    _record(db_session, settings, provisioned.id, "cloudmailin: once")
    ship_logs(provisioned.id)
    assert ship_logs(provisioned.id) == "shipped 0, dropped 0"
    assert len(running.inspect().logs(addon=provisioned.id)) == 1


def test_the_worker_runs_the_job_that_recording_enqueued(heroku, db_session, provisioned):
    running, settings = heroku
    _record(db_session, settings, provisioned.id, "cloudmailin: via rq")
    connection = redis_connection(settings.redis_url)
    SimpleWorker([Queue(LOGS_QUEUE, connection=connection)], connection=connection).work(burst=True)
    assert [line["message"] for line in running.inspect().logs(addon=provisioned.id, at_least=1)] == [
        "cloudmailin: via rq"
    ]


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A log endpoint that keeps every POST, to see batching and authentication."""
    posts: list[dict[str, Any]] = []
    app = Flask("receiver")

    @app.post("/logs")
    def logs() -> Response:
        posts.append({
            "auth": (request.authorization.username, request.authorization.password)
            if request.authorization else None,
            "content_type": request.headers.get("Content-Type"),
            "count": request.headers.get("Logplex-Msg-Count"),
            "frames": parse_frames(request.get_data()),
        })
        return Response(status=204)

    with serve_wsgi(app) as url:
        yield url, posts


def test_many_lines_go_in_batches_with_basic_auth_from_the_url(heroku, db_session, receiver):
    running, settings = heroku
    url, posts = receiver
    seeded = seed_addon(running)
    log_url = url.replace("http://", "http://token:t.s%40cret@") + "/logs"
    add_resource(db_session, settings, seeded, state=PROVISIONED, log_url=log_url)
    _record(db_session, settings, seeded.id, *(f"cloudmailin: line {n}" for n in range(BATCH * 2 + 5)))
    ship_logs(seeded.id)
    assert [len(post["frames"]) for post in posts] == [BATCH, BATCH, 5]
    assert [post["count"] for post in posts] == [str(BATCH), str(BATCH), "5"]
    assert {post["auth"] for post in posts} == {("token", "t.s@cret")}
    assert {post["content_type"] for post in posts} == {"application/logplex-1"}
    assert [f.message for post in posts for f in post["frames"]][-1] == f"cloudmailin: line {BATCH * 2 + 4}"


def test_a_failing_endpoint_keeps_the_lines_and_reschedules(heroku, db_session, provisioned):
    running, settings = heroku
    _record(db_session, settings, provisioned.id, "cloudmailin: will wait")
    inject_fault(running.url, "/logs", 503)
    before = datetime.now(UTC)
    ship_logs(provisioned.id)
    assert [line.shipped_at for line in _lines(db_session, provisioned.id)] == [None]
    ((args, when),) = _scheduled(settings)
    assert args[:2] == (provisioned.id, 1)
    assert when >= before.replace(microsecond=0) + timedelta(seconds=LOG_BACKOFF.delays[0])
    # A line logged meanwhile waits for the scheduled retry instead of starting a second job.
    _record(db_session, settings, provisioned.id, "cloudmailin: also waits")
    assert _queued(settings) == [(provisioned.id,)]  # the one from the first record only


def test_the_retry_ships_what_the_first_attempt_could_not(heroku, db_session, provisioned):
    running, settings = heroku
    _record(db_session, settings, provisioned.id, "cloudmailin: late but there")
    inject_fault(running.url, "/logs", 502)
    ship_logs(provisioned.id)
    ((args, _),) = _scheduled(settings)
    assert ship_logs(*args) == "shipped 1, dropped 0"
    assert [line["message"] for line in running.inspect().logs(addon=provisioned.id)] == [
        "cloudmailin: late but there"
    ]


def test_after_the_last_retry_old_lines_are_dropped_with_a_warning(heroku, db_session, provisioned, caplog):
    running, settings = heroku
    _record(db_session, settings, provisioned.id, "cloudmailin: tried every time", "cloudmailin: newer")
    old, new = _lines(db_session, provisioned.id)
    started = datetime.now(UTC)
    old.created_at = started - timedelta(minutes=40)
    new.created_at = started + timedelta(seconds=30)  # logged after the chain began
    db_session.commit()
    Queue(LOGS_QUEUE, connection=redis_connection(settings.redis_url)).empty()
    inject_fault(running.url, "/logs", 503, times=5)
    with caplog.at_level(logging.WARNING, logger="workers.jobs.logs"):
        result = ship_logs(provisioned.id, len(LOG_BACKOFF.delays), started.isoformat())
    assert result == "gave up, dropped 1"
    assert [line.message for line in _lines(db_session, provisioned.id)] == ["cloudmailin: newer"]
    assert "dropped 1 lines" in caplog.text
    assert _scheduled(settings) == []
    assert _queued(settings) == [(provisioned.id,)]  # the newer line gets a chain of its own


def test_an_endpoint_refusing_the_token_gets_the_lines_dropped_at_once(heroku, db_session, caplog):
    running, settings = heroku
    seeded = seed_addon(running)
    wrong = seeded.log_input_url.replace("token:t.", "token:wrong.")
    add_resource(db_session, settings, seeded, state=PROVISIONED, log_url=wrong)
    _record(db_session, settings, seeded.id, "cloudmailin: refused")
    with caplog.at_level(logging.WARNING, logger="workers.jobs.logs"):
        assert ship_logs(seeded.id) == "shipped 0, dropped 1"
    assert _lines(db_session, seeded.id) == []
    assert _scheduled(settings) == []
    assert "refused 1 lines" in caplog.text


def test_an_unreachable_endpoint_never_fails_the_operation_that_logged(heroku, db_session):
    running, settings = heroku
    seeded = seed_addon(running)
    add_resource(db_session, settings, seeded, state=PROVISIONED, log_url="http://token:t.x@127.0.0.1:9/logs")
    _record(db_session, settings, seeded.id, "cloudmailin: nobody listens")
    assert ship_logs(seeded.id).startswith("shipped 0; retrying")
    assert len(_lines(db_session, seeded.id)) == 1


def test_drain_takes_credentials_out_of_the_url():
    drain = Drain.parse("https://token:t.abc%2Fdef@1.us.logplex.io:8443/logs")
    assert drain == Drain("https://1.us.logplex.io:8443/logs", ("token", "t.abc/def"))
    assert Drain.parse("http://127.0.0.1:5000/logs").auth is None
