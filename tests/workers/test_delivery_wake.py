"""Waking the delivery workers: one waiting job serves every message accepted meanwhile, each run
makes room for the next wake before it claims, a full claim wakes another worker, and a wake flag
left without its job is healed by the poller. Real API, PostgreSQL, Redis, DNS and MXes."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue

from provider.tasks import DELIVER_JOB, DRAIN_JOB, OUTBOUND_QUEUES, wake_flag
from tests.job_settings import settings_in_use
from tests.outbound.conftest import SENDING_DOMAIN
from workers.delivery import engine
from workers.delivery.worker import poll_once
from workers.jobs.delivery import drain

from . import test_delivery
from .test_delivery import Delivery

delivery = test_delivery.delivery  # the fixture: MXes on 127.0.0.2-3 found through a real DNS server

STANDARD = OUTBOUND_QUEUES["standard"]


def _post(client: FlaskClient, delivery: Delivery, to: str) -> uuid.UUID:
    response = client.post(
        delivery.account.path(), headers=delivery.account.auth,
        json={"from": f"orders@{SENDING_DOMAIN}", "to": to, "subject": "Hi", "plain": "Hello"},
    )
    assert response.status_code == 202, response.json
    return uuid.UUID(response.json["id"])


def _jobs(redis: Redis, queue: str = STANDARD) -> list[tuple[str, str | None]]:
    return [(job.func_name, job.id) for job in Queue(queue, connection=redis).get_jobs()]


def _run_waiting_jobs(delivery: Delivery, redis: Redis) -> None:
    """What a delivery worker does with the jobs in the queue, in order."""
    queue = Queue(STANDARD, connection=redis)
    for job in queue.get_jobs():
        queue.remove(job)
        with settings_in_use(delivery.settings):
            job.func(*job.args)


def _all_delivered(delivery: Delivery, ids: list[uuid.UUID]) -> bool:
    return all(r.state == "delivered" for i in ids for r in delivery.recipients(i).values())


def test_messages_accepted_while_a_delivery_job_waits_share_that_job(
    client: FlaskClient, delivery: Delivery, redis: Redis
) -> None:
    ids = [_post(client, delivery, f"r{i}@example.com") for i in range(3)]
    assert _jobs(redis) == [(DELIVER_JOB, f"deliver-{ids[0]}")]
    _run_waiting_jobs(delivery, redis)
    assert _all_delivered(delivery, ids)
    assert sorted(r.rcpt_tos[0] for r in delivery.mx.received) == [f"r{i}@example.com" for i in range(3)]


def test_a_message_accepted_after_a_run_began_gets_a_job_of_its_own(
    client: FlaskClient, delivery: Delivery, redis: Redis
) -> None:
    first = _post(client, delivery, "ann@example.com")
    _run_waiting_jobs(delivery, redis)
    later = _post(client, delivery, "bo@example.com")
    assert _jobs(redis) == [(DELIVER_JOB, f"deliver-{later}")]
    _run_waiting_jobs(delivery, redis)
    assert _all_delivered(delivery, [first, later])


def test_a_full_claim_wakes_a_drain_for_another_worker(
    delivery: Delivery, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BATCH", 2)
    ids = [delivery.send(f"r{i}@example.com") for i in range(3)]
    delivery.deliver(ids[0])
    assert _all_delivered(delivery, ids)
    assert _jobs(redis) == [(DRAIN_JOB, _jobs(redis)[0][1])]


def test_a_wake_flag_whose_job_was_lost_is_healed_by_the_poller(
    client: FlaskClient, delivery: Delivery, redis: Redis
) -> None:
    redis.set(wake_flag(STANDARD), "deliver-lost", ex=60)  # its job never reached the queue
    message_id = _post(client, delivery, "ann@example.com")
    assert _jobs(redis) == []
    assert poll_once(delivery.settings, redis)
    assert [func for func, _ in _jobs(redis)] == [DRAIN_JOB]
    _run_waiting_jobs(delivery, redis)
    assert _all_delivered(delivery, [message_id])
    assert redis.get(wake_flag(STANDARD)) is None
    _post(client, delivery, "bo@example.com")  # wakes a job again
    assert [func for func, _ in _jobs(redis)] == [DELIVER_JOB]


def test_the_drain_job_delivers_what_is_due(delivery: Delivery) -> None:
    message_id = delivery.send("ann@example.com")
    with settings_in_use(delivery.settings):
        assert drain()["delivered"] == 1
    assert _all_delivered(delivery, [message_id])
