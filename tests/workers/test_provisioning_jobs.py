"""The grant exchange and async provisioning jobs against the stand-in, resources made by the
partner API's own `provision` service in the mode under test."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select, update

from provider.db import session_factory
from provider.models import AppLogLine, Domain, Resource
from provider.models.domain import INBOUND
from provider.models.resource import DEPROVISIONED, PROVISIONED, PROVISIONING
from provider.plans import plan_named
from provider.services import credentials, oauth_tokens
from provider.services.partner_requests import OAuthGrant, ProvisionRequest
from provider.services.provisioning import config_for, deprovision, provision
from provider.tasks import (
    COMPLETE_PROVISIONING_JOB,
    DEPROVISION_ACTION_JOB,
    EXCHANGE_GRANT_JOB,
    PROVISIONING_QUEUE,
    RqJobQueue,
    redis_connection,
)
from tests.heroku_side import SeededAddon, seed_addon, token_calls
from tests.heroku_standin.faults import inject_fault
from workers.jobs.provisioning import (
    PROVISIONING_BACKOFF,
    complete_provisioning,
    deprovision_action,
    exchange_grant,
)


def _provision(db_session, settings, seeded: SeededAddon, mode: str) -> Resource:
    request = ProvisionRequest(
        uuid=seeded.id,
        plan=plan_named("starter"),
        log_input_url=seeded.log_input_url,
        oauth_grant=OAuthGrant(seeded.grant_code, seeded.grant_expires_at),
        target="https://example.com/incoming",
    )
    mode_settings = dataclasses.replace(settings, provisioning_mode=mode)
    provision(db_session, mode_settings, request, RqJobQueue(settings.redis_url))
    resource = db_session.get(Resource, seeded.id)
    assert resource is not None
    return resource


def resource_lines(db_session, resource_id: str) -> list[AppLogLine]:
    return list(db_session.scalars(
        select(AppLogLine).where(AppLogLine.resource_id == resource_id).order_by(AppLogLine.id)
    ))


def _reload(db_session, resource_id: str) -> Resource:
    db_session.expire_all()
    resource = db_session.get(Resource, resource_id)
    assert resource is not None
    return resource


def _scheduled(settings) -> list[tuple[str, tuple[Any, ...], datetime]]:
    connection = redis_connection(settings.redis_url)
    registry = ScheduledJobRegistry(queue=Queue(PROVISIONING_QUEUE, connection=connection))
    found = []
    for job_id in registry.get_job_ids():
        job = Job.fetch(job_id, connection=connection)
        found.append((job.func_name, job.args, registry.get_scheduled_time(job_id)))
    return found


@pytest.fixture
def async_addon(heroku, db_session):
    running, settings = heroku
    seeded = seed_addon(running)
    _provision(db_session, settings, seeded, "async")
    return seeded


# -- sync mode: only the grant -----------------------------------------------------------------


def test_sync_mode_job_exchanges_the_grant_and_stores_the_tokens(heroku, db_session):
    running, settings = heroku
    seeded = seed_addon(running)
    _provision(db_session, settings, seeded, "sync")
    assert exchange_grant(seeded.id) == "exchanged"
    resource = _reload(db_session, seeded.id)
    assert oauth_tokens.has_tokens(resource) and resource.oauth_grant_enc is None
    assert exchange_grant(seeded.id) == "tokens already stored"
    assert token_calls(running) == 1


def test_the_partner_api_enqueues_the_exchange_and_a_worker_runs_it(heroku, db_session):
    running, settings = heroku
    seeded = seed_addon(running)
    _provision(db_session, settings, seeded, "sync")
    connection = redis_connection(settings.redis_url)
    SimpleWorker([Queue(PROVISIONING_QUEUE, connection=connection)], connection=connection).work(burst=True)
    assert oauth_tokens.has_tokens(_reload(db_session, seeded.id))
    assert running.inspect().addon(seeded.id)["grant_used"] is True


def test_exchange_retries_quickly_while_the_token_endpoint_is_down(heroku, db_session):
    running, settings = heroku
    seeded = seed_addon(running)
    _provision(db_session, settings, seeded, "sync")
    inject_fault(running.url, "/oauth/token", 503)
    assert exchange_grant(seeded.id).startswith("retrying in 2s")
    ((func, args, _),) = _scheduled(settings)
    assert (func, args) == (EXCHANGE_GRANT_JOB, (seeded.id, 1))
    assert exchange_grant(*args) == "exchanged"


def test_an_expired_grant_is_given_up_with_a_warning(heroku, db_session, caplog):
    running, settings = heroku
    seeded = seed_addon(running)
    _provision(db_session, settings, seeded, "sync")
    expired = datetime.now(UTC) - timedelta(minutes=1)
    db_session.execute(update(Resource).values(oauth_grant_expires_at=expired))
    db_session.commit()
    with caplog.at_level(logging.WARNING, logger="workers.jobs.provisioning"):
        assert exchange_grant(seeded.id).startswith("gave up")
    assert "cannot be exchanged" in caplog.text
    assert token_calls(running) == 0
    assert _reload(db_session, seeded.id).state == PROVISIONED


# -- async mode --------------------------------------------------------------------------------


def test_async_provisioning_sets_the_config_and_marks_the_addon_provisioned(heroku, db_session, async_addon):
    running, settings = heroku
    assert complete_provisioning(async_addon.id) == "provisioned"
    resource = _reload(db_session, async_addon.id)
    shown = running.inspect().addon(async_addon.id)
    assert shown["state"] == "provisioned"
    assert shown["config"] == config_for(db_session, settings, resource)
    assert set(shown["config"]) == {"CLOUDMAILIN_FORWARD_ADDRESS", "CLOUDMAILIN_SMTP_URL"}
    assert resource.state == PROVISIONED
    assert [line.message for line in resource_lines(db_session, async_addon.id)] == [
        "cloudmailin: provisioning plan=starter", "cloudmailin: provisioned plan=starter",
    ]


def test_the_smtp_url_heroku_receives_authenticates(heroku, db_session, async_addon):
    running, _ = heroku
    complete_provisioning(async_addon.id)
    smtp_url = running.inspect().addon(async_addon.id)["config"]["CLOUDMAILIN_SMTP_URL"]
    user, key = smtp_url.removeprefix("smtp://").split("@")[0].split(":")
    found = credentials.authenticate(db_session, user, key)
    assert found is not None and found.id == async_addon.id


def test_running_the_async_job_twice_is_harmless(heroku, db_session, async_addon):
    running, _ = heroku
    complete_provisioning(async_addon.id)
    calls = len(running.inspect().calls(direction="to_platform"))
    assert complete_provisioning(async_addon.id) == "resource already provisioned"
    assert len(running.inspect().calls(direction="to_platform")) == calls


def test_a_temporary_failure_keeps_the_tokens_and_the_retry_finishes_without_the_grant(
    heroku, db_session, async_addon
):
    running, settings = heroku
    inject_fault(running.url, f"/addons/{async_addon.id}/config", 503, method="PATCH")
    assert complete_provisioning(async_addon.id).startswith("retrying in 5s")
    resource = _reload(db_session, async_addon.id)
    assert resource.state == PROVISIONING
    assert oauth_tokens.has_tokens(resource)
    ((func, args, _),) = _scheduled(settings)
    assert (func, args) == (COMPLETE_PROVISIONING_JOB, (async_addon.id, 1))
    assert complete_provisioning(*args) == "provisioned"
    assert token_calls(running, "authorization_code") == 1
    assert running.inspect().addon(async_addon.id)["state"] == "provisioned"


def test_a_rate_limit_waits_at_least_as_long_as_heroku_asks(heroku, db_session, async_addon):
    running, settings = heroku
    inject_fault(running.url, f"/addons/{async_addon.id}/actions/provision", 429,
                 headers={"Retry-After": "600"})
    before = datetime.now(UTC)
    complete_provisioning(async_addon.id)
    ((_, _, when),) = _scheduled(settings)
    assert when >= before.replace(microsecond=0) + timedelta(seconds=600)


def test_a_permanent_failure_gives_up_and_posts_the_deprovision_action(heroku, db_session, async_addon):
    running, settings = heroku
    inject_fault(running.url, f"/addons/{async_addon.id}/config", 422, method="PATCH",
                 body={"id": "invalid_params", "message": "no"})
    assert complete_provisioning(async_addon.id) == "gave up; deprovision action posted"
    assert running.inspect().addon(async_addon.id)["state"] == "deprovisioned"
    posted = [c["url"] for c in running.inspect().calls(addon=async_addon.id) if c["method"] == "POST"]
    assert posted == [f"/addons/{async_addon.id}/actions/deprovision"]
    resource = _reload(db_session, async_addon.id)
    assert resource.state == DEPROVISIONED
    assert not oauth_tokens.has_tokens(resource)
    assert all(c.revoked_at is not None for c in resource.credentials)
    assert _scheduled(settings) == []


def test_giving_up_frees_the_custom_domains_and_clears_targets_as_a_delete_does(
    heroku, db_session, async_addon
):
    running, _ = heroku
    resource = _reload(db_session, async_addon.id)
    resource.addresses[0].target_url = "https://user:pw@target.example/in"
    resource.options = {"target": "https://user:pw@target.example/in"}
    db_session.add(Domain(resource_id=resource.id, name="mail.example.com", kind=INBOUND))
    db_session.commit()
    inject_fault(running.url, f"/addons/{async_addon.id}/config", 422, method="PATCH")
    assert complete_provisioning(async_addon.id).startswith("gave up")
    resource = _reload(db_session, async_addon.id)
    assert resource.addresses[0].target_url is None
    assert resource.options == {}
    assert db_session.scalars(select(Domain)).all() == []


def test_running_out_of_attempts_gives_up(heroku, db_session, async_addon):
    running, _ = heroku
    inject_fault(running.url, f"/addons/{async_addon.id}/config", 503, method="PATCH")
    last = len(PROVISIONING_BACKOFF.delays)
    assert complete_provisioning(async_addon.id, last).startswith("gave up")
    assert running.inspect().addon(async_addon.id)["state"] == "deprovisioned"


def test_past_herokus_twelve_hours_a_temporary_failure_gives_up(heroku, db_session, async_addon):
    running, _ = heroku
    db_session.execute(update(Resource).values(created_at=datetime.now(UTC) - timedelta(hours=12)))
    db_session.commit()
    inject_fault(running.url, f"/addons/{async_addon.id}/config", 503, method="PATCH")
    assert complete_provisioning(async_addon.id).startswith("gave up")


def test_without_tokens_giving_up_only_stops_the_resource_here(heroku, db_session, async_addon):
    running, _ = heroku
    expired = datetime.now(UTC) - timedelta(seconds=1)
    db_session.execute(update(Resource).values(oauth_grant_expires_at=expired))
    db_session.commit()
    assert complete_provisioning(async_addon.id) == "gave up; no tokens for the deprovision action"
    assert _reload(db_session, async_addon.id).state == DEPROVISIONED
    assert running.inspect().addon(async_addon.id)["state"] == "provisioning"


def test_a_failing_deprovision_action_is_retried_by_its_own_job(heroku, db_session, async_addon):
    running, settings = heroku
    inject_fault(running.url, f"/addons/{async_addon.id}/config", 422, method="PATCH")
    inject_fault(running.url, f"/addons/{async_addon.id}/actions/deprovision", 503)
    assert "deprovision action retrying" in complete_provisioning(async_addon.id)
    ((func, args, _),) = _scheduled(settings)
    assert (func, args) == (DEPROVISION_ACTION_JOB, (async_addon.id, 1))
    assert deprovision_action(*args) == "deprovision action posted"
    assert running.inspect().addon(async_addon.id)["state"] == "deprovisioned"
    assert not oauth_tokens.has_tokens(_reload(db_session, async_addon.id))


def test_a_deprovisioned_resource_is_not_provisioned_by_a_late_job(heroku, db_session, async_addon):
    running, settings = heroku
    deprovision(db_session, settings, async_addon.id)
    assert complete_provisioning(async_addon.id) == "resource already deprovisioned"
    assert token_calls(running) == 0


def test_a_run_finding_the_resource_locked_comes_back_later(heroku, settings, async_addon):
    running, _ = heroku
    with session_factory(settings.database_url)() as other_run:
        oauth_tokens.lock_resource(other_run, async_addon.id)
        assert complete_provisioning(async_addon.id) == "resource busy; retrying in 5s"
        other_run.rollback()
    assert token_calls(running) == 0
    ((func, args, _),) = _scheduled(settings)
    assert (func, args) == (COMPLETE_PROVISIONING_JOB, (async_addon.id, 1))
    assert complete_provisioning(*args) == "provisioned"


def test_a_job_for_a_resource_that_no_longer_exists_does_nothing(heroku, settings):
    assert exchange_grant("00000000-0000-0000-0000-000000000000") == "resource gone"
    assert complete_provisioning("00000000-0000-0000-0000-000000000000") == "resource gone"
    assert _scheduled(settings) == []
