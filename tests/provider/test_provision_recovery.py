"""A provision whose background job Redis refused still answers Heroku, and the sweep finds the
unfinished work in PostgreSQL; a partner call never waits longer than Heroku does."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from rq import Queue
from sqlalchemy import select

from provider import create_app
from provider.db import session_factory
from provider.models import Resource
from provider.models.resource import PROVISIONED, PROVISIONING
from provider.tasks import COMPLETE_PROVISIONING_JOB, EXCHANGE_GRANT_JOB, PROVISIONING_QUEUE, redis_connection
from workers.jobs.sweep import sweep_once

from .partner import provision, send

NO_REDIS = "redis://127.0.0.1:9/0"


def _queued(settings) -> list[tuple[str, tuple]]:
    jobs = Queue(PROVISIONING_QUEUE, connection=redis_connection(settings.redis_url)).jobs
    return [(job.func_name, tuple(job.args)) for job in jobs]


def _later(db_session, seconds: float = 45) -> datetime:
    created = db_session.scalar(select(Resource.created_at))
    return created + timedelta(seconds=seconds)


def test_sync_provision_answers_even_if_redis_refuses_the_grant_job_and_the_sweep_exchanges_it(
    settings, db_session, caplog
):
    broken = dataclasses.replace(settings, redis_url=NO_REDIS)
    with caplog.at_level(logging.ERROR, logger="provider.tasks"):
        response = provision(create_app(broken).test_client(), broken)
    assert response.status_code == 201
    assert set(response.json["config"]) == {"CLOUDMAILIN_FORWARD_ADDRESS", "CLOUDMAILIN_SMTP_URL"}
    assert "the sweep will find the work" in caplog.text
    assert "grant-code-123" not in caplog.text
    resource = db_session.scalar(select(Resource))
    assert resource.state == PROVISIONED and resource.oauth_grant_enc is not None
    assert sweep_once(db_session, settings, now=_later(db_session, 5))["grant_exchanges"] == 0
    assert sweep_once(db_session, settings, now=_later(db_session))["grant_exchanges"] == 1
    assert _queued(settings) == [(EXCHANGE_GRANT_JOB, (resource.id,))]


def test_async_provision_whose_first_job_was_lost_is_completed_by_the_next_sweep(settings, db_session):
    broken = dataclasses.replace(settings, redis_url=NO_REDIS, provisioning_mode="async")
    assert provision(create_app(broken).test_client(), broken).status_code == 202
    resource = db_session.scalar(select(Resource))
    assert resource.state == PROVISIONING
    assert sweep_once(db_session, settings, now=_later(db_session))["provisioning"] == 1
    assert _queued(settings) == [(COMPLETE_PROVISIONING_JOB, (resource.id,))]


def test_an_exchanged_or_expired_grant_is_left_alone(settings, db_session, client):
    provision(client, settings)
    resource = db_session.scalar(select(Resource))
    later = _later(db_session)
    resource.oauth_grant_expires_at = later - timedelta(seconds=1)
    db_session.commit()
    assert sweep_once(db_session, settings, now=later)["grant_exchanges"] == 0


def test_a_plan_change_on_a_row_a_job_holds_answers_503_within_heroku_s_patience(
    settings, db_session, client
):
    resource_id = provision(client, settings).json["id"]
    holder = session_factory(settings.database_url)()
    try:
        holder.scalars(select(Resource).where(Resource.id == resource_id).with_for_update()).one()
        path = f"/heroku/resources/{resource_id}"
        response = send(client, settings, "PUT", path, {"plan": "premium"})
        assert response.status_code == 503  # the lock wait ran out, instead of waiting for the job
        assert "try again" in response.json["message"]
        assert response.headers["Retry-After"] == "2"
        deleted = send(client, settings, "DELETE", f"/heroku/resources/{resource_id}")
        assert deleted.status_code == 503
    finally:
        holder.rollback()
        holder.close()
    assert send(client, settings, "PUT", path, {"plan": "premium"}).status_code == 200
    db_session.expire_all()
    assert db_session.get(Resource, resource_id).plan == "premium"
