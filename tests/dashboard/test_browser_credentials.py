"""Rotating the key in a real browser: the user clicks "Rotate the key" on the Credentials page,
the config-push job runs (in this process, as the worker would), and the app's
CLOUDMAILIN_SMTP_URL in the Heroku stand-in, as the real Heroku CLI shows it, is the new key's."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from rq import Queue, SimpleWorker
from sqlalchemy.orm import Session

from provider.models import Resource
from provider.plans import plan_named
from provider.services import credentials
from provider.services.partner_requests import OAuthGrant, ProvisionRequest
from provider.services.provisioning import provision
from provider.settings import Settings
from provider.tasks import PROVISIONING_QUEUE, RqJobQueue, redis_connection
from tests.cli import HerokuCli
from tests.heroku_side import API_KEY, seed_addon
from tests.heroku_standin import RunningStandin
from workers.context import use_settings
from workers.jobs.provisioning import exchange_grant

from .browsing import serious_violations, shoot, sign_in_through_heroku

pytestmark = pytest.mark.e2e


@pytest.fixture
def jobs_settings(heroku: RunningStandin, settings: Settings) -> Iterator[Settings]:
    """The settings the worker's jobs would have: the platform API and OAuth are the stand-in's."""
    pointed = dataclasses.replace(settings, heroku_api_url=heroku.url, heroku_id_url=heroku.url)
    use_settings(pointed)
    try:
        yield pointed
    finally:
        use_settings(None)


def _provisioned(heroku: RunningStandin, db_session: Session, settings: Settings) -> str:
    """An add-on provisioned as Heroku does it: the partner API's call, then the grant exchange."""
    seeded = seed_addon(heroku, app_name="shiny-app")
    sync = dataclasses.replace(settings, provisioning_mode="sync")
    provision(db_session, sync, ProvisionRequest(
        uuid=seeded.id, plan=plan_named("starter"), log_input_url=seeded.log_input_url,
        oauth_grant=OAuthGrant(seeded.grant_code, seeded.grant_expires_at),
        target="https://example.com/incoming",
    ), RqJobQueue(sync.redis_url))
    assert exchange_grant(seeded.id) == "exchanged"
    with heroku.parts.store.lock:
        heroku.parts.store.addons[seeded.id].state = "provisioned"
    return seeded.id


def _run_the_config_push(settings: Settings) -> None:
    connection = redis_connection(settings.redis_url)
    SimpleWorker([Queue(PROVISIONING_QUEUE, connection=connection)], connection=connection).work(burst=True)


def test_a_user_rotates_the_key_and_heroku_config_shows_the_new_smtp_url(
    browser: Browser, heroku: RunningStandin, site: str, db_session: Session, jobs_settings: Settings,
    tmp_path: Path,
) -> None:
    addon_id = _provisioned(heroku, db_session, jobs_settings)
    resource = db_session.get(Resource, addon_id)
    assert resource is not None
    before = credentials.current_pair(jobs_settings, resource)
    assert before is not None
    old_user = before.username

    signed = sign_in_through_heroku(browser, heroku, site, addon_id)
    page = signed.page
    page.get_by_role("link", name="Credentials").click()
    expect(page.locator("#username")).to_have_text(old_user)
    page.get_by_role("button", name="Rotate the key").click()
    expect(page.get_by_role("status")).to_contain_text("New key issued for username")
    new_user = page.locator("#username").inner_text()
    assert new_user != old_user
    # The old key keeps working for its grace period, and the page says until when.
    expect(page.locator("#retiring")).to_contain_text(old_user)
    shoot(page, "credentials-rotated")
    assert serious_violations(page) == []

    _run_the_config_push(jobs_settings)
    cli = HerokuCli(heroku.url, API_KEY, tmp_path / "cli-home")
    after = cli.run("config:get", "CLOUDMAILIN_SMTP_URL", "-a", "shiny-app").ok().stdout.strip()
    db_session.expire_all()
    current = credentials.current_pair(jobs_settings, resource)
    assert current is not None and current.username == new_user
    assert after == credentials.smtp_url(jobs_settings, current)
    assert after != credentials.smtp_url(jobs_settings, before)
    assert re.fullmatch(rf"smtp://{new_user}:[0-9a-f]+@.+", after)
    assert signed.errors == []
    signed.context.close()
