"""Rotating the key from the dashboard: the new CLOUDMAILIN_SMTP_URL reaches the app through the
platform API (the stand-in on a real socket), the old key keeps working for its grace period, and
the app's log says so. Resources are made by the partner API's own `provision` service."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import select

from provider import create_app
from provider.jobs import PUSH_CONFIG_JOB
from provider.models import AppLogLine, Resource
from provider.models.resource import PROVISIONED
from provider.plans import plan_named
from provider.services import credentials
from provider.services.partner_requests import OAuthGrant, ProvisionRequest
from provider.services.provisioning import provision
from provider.tasks import LOGS_QUEUE, PROVISIONING_QUEUE, RqJobQueue, redis_connection
from tests.cli import HerokuCli
from tests.heroku_side import API_KEY, SeededAddon, seed_addon
from tests.heroku_standin.faults import inject_fault
from tests.logjobs import dispatch
from tests.provider.sso_fields import fields
from workers.jobs.config_push import push_config
from workers.jobs.provisioning import exchange_grant


def _provisioned(db_session, settings, seeded: SeededAddon) -> None:
    request = ProvisionRequest(
        uuid=seeded.id, plan=plan_named("starter"), log_input_url=seeded.log_input_url,
        oauth_grant=OAuthGrant(seeded.grant_code, seeded.grant_expires_at),
        target="https://example.com/incoming",
    )
    sync = dataclasses.replace(settings, provisioning_mode="sync")
    provision(db_session, sync, request, RqJobQueue(sync.redis_url))
    assert exchange_grant(seeded.id) == "exchanged"
    db_session.expire_all()
    resource = db_session.get(Resource, seeded.id)
    assert resource is not None and resource.state == PROVISIONED


def _pair(smtp_url: str) -> tuple[str, str]:
    user, key = smtp_url.removeprefix("smtp://").split("@")[0].split(":")
    return user, key


def _rotate_through_the_dashboard(settings, resource_id: str) -> None:
    client = create_app(settings).test_client()
    assert client.post("/sso/login", data=fields(resource_id, settings.sso_salt)).status_code == 302
    page = client.get("/dashboard/credentials").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    answer = client.post("/dashboard/credentials/rotate", data={"csrf_token": token.group(1)})
    assert answer.status_code == 303


def _work(settings, queue: str) -> None:
    connection = redis_connection(settings.redis_url)
    SimpleWorker([Queue(queue, connection=connection)], connection=connection).work(burst=True)


@pytest.fixture
def addon(heroku, db_session):
    running, settings = heroku
    seeded = seed_addon(running)
    _provisioned(db_session, settings, seeded)
    return seeded


def test_rotating_sends_the_new_smtp_url_to_the_app_and_the_old_key_works_until_the_grace_ends(
    heroku, db_session, addon
):
    running, settings = heroku
    old_user, old_key = _pair(credentials.smtp_url(settings, _current(db_session, settings, addon.id)))
    _rotate_through_the_dashboard(settings, addon.id)
    _work(settings, PROVISIONING_QUEUE)

    shown = running.inspect().addon(addon.id)["config"]["CLOUDMAILIN_SMTP_URL"]
    new_user, new_key = _pair(shown)
    assert new_user != old_user and new_key != old_key
    assert shown == credentials.smtp_url(settings, _current(db_session, settings, addon.id))
    assert _authenticates(db_session, new_user, new_key)
    old = _credential(db_session, old_user)
    assert old.expires_at is not None
    assert _authenticates(db_session, old_user, old_key, now=old.expires_at - timedelta(seconds=1))
    assert not _authenticates(db_session, old_user, old_key, now=old.expires_at)


def test_heroku_config_shows_the_new_url_after_rotation(heroku, db_session, addon, tmp_path):
    running, settings = heroku
    _rotate_through_the_dashboard(settings, addon.id)
    _work(settings, PROVISIONING_QUEUE)
    cli = HerokuCli(running.url, API_KEY, tmp_path / "cli-home")
    shown = cli.run("config:get", "CLOUDMAILIN_SMTP_URL", "-a", "demo").ok().stdout.strip()
    assert shown == credentials.smtp_url(settings, _current(db_session, settings, addon.id))


def test_the_rotation_and_the_config_update_are_shipped_to_the_apps_log(heroku, db_session, addon):
    running, settings = heroku
    _rotate_through_the_dashboard(settings, addon.id)
    _work(settings, PROVISIONING_QUEUE)
    dispatch(settings)
    _work(settings, LOGS_QUEUE)
    messages = [line["message"] for line in running.inspect().logs(addon=addon.id, at_least=2)]
    new_user = _current(db_session, settings, addon.id).username
    assert any(m.startswith(f"cloudmailin: SMTP/API key rotated, new username={new_user};") for m in messages)
    assert "cloudmailin: CLOUDMAILIN_SMTP_URL updated on the app" in messages
    assert all(_current(db_session, settings, addon.id).key not in m for m in messages)


def test_the_config_update_retries_while_the_platform_api_is_down(heroku, db_session, addon):
    running, settings = heroku
    inject_fault(running.url, f"/addons/{addon.id}/config", 503, method="PATCH")
    _rotate_through_the_dashboard(settings, addon.id)
    assert push_config(addon.id).startswith("retrying in 5s")
    scheduled = _scheduled(settings)
    assert scheduled == [(PUSH_CONFIG_JOB, (addon.id, 1))]
    assert push_config(addon.id, 1) == "config updated"
    assert push_config(addon.id, 1) == "config updated"  # a repeat sends the same values
    shown = running.inspect().addon(addon.id)["config"]["CLOUDMAILIN_SMTP_URL"]
    assert shown == credentials.smtp_url(settings, _current(db_session, settings, addon.id))


def test_a_refused_config_update_gives_up_and_says_so_in_the_apps_log(heroku, db_session, addon):
    running, settings = heroku
    inject_fault(running.url, f"/addons/{addon.id}/config", 422, method="PATCH")
    _rotate_through_the_dashboard(settings, addon.id)
    assert push_config(addon.id).startswith("gave up")
    db_session.expire_all()
    lines = db_session.scalars(select(AppLogLine.message).where(AppLogLine.resource_id == addon.id)).all()
    assert any("could not be updated" in line for line in lines)


def _scheduled(settings):
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    connection = redis_connection(settings.redis_url)
    registry = ScheduledJobRegistry(queue=Queue(PROVISIONING_QUEUE, connection=connection))
    return [
        (job.func_name, job.args)
        for job in (Job.fetch(job_id, connection=connection) for job_id in registry.get_job_ids())
    ]


def _current(db_session, settings, resource_id: str) -> credentials.IssuedCredential:
    db_session.expire_all()
    resource = db_session.get(Resource, resource_id)
    assert resource is not None
    pair = credentials.current_pair(settings, resource)
    assert pair is not None
    return pair


def _credential(db_session, username: str):
    db_session.expire_all()
    from provider.models import Credential

    found = db_session.scalar(select(Credential).where(Credential.username == username))
    assert found is not None
    return found


def _authenticates(db_session, user: str, key: str, **kwargs) -> bool:
    return credentials.authenticate(db_session, user, key, **kwargs) is not None
