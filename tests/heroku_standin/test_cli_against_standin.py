"""The real Heroku CLI drives the stand-in, which drives the small peer provider.

These prove the stand-in speaks what the CLI needs (the end-to-end tests then swap the peer for
the real partner API)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import HerokuCli
from tests.heroku_standin import RunningStandin
from tests.heroku_standin.browser import open_web_url
from tests.heroku_standin.conftest import CONFIG, PeerProvider

pytestmark = pytest.mark.e2e


def test_sync_lifecycle_create_config_upgrade_open_destroy(
    heroku: HerokuCli, standin: RunningStandin, peer: PeerProvider
) -> None:
    created = heroku.run(
        "addons:create", "cloudmailin:starter", "-a", "demo", "--", "--target=https://x.test/in"
    ).ok()
    assert "ready" in created.stdout  # the provider's message, printed by the CLI
    assert "CLOUDMAILIN_FORWARD_ADDRESS, CLOUDMAILIN_SMTP_URL" in created.stdout

    config = heroku.run("config", "-a", "demo", "--json").ok()
    assert '"CLOUDMAILIN_SMTP_URL": "smtp://user:key@127.0.0.1:587?starttls=true"' in config.stdout

    upgraded = heroku.run("addons:upgrade", "cloudmailin:premium", "-a", "demo").ok()
    assert "now on premium" in upgraded.stdout
    info = heroku.run("addons:info", "cloudmailin", "-a", "demo").ok()
    assert "cloudmailin:premium" in info.stdout
    assert "created" in info.stdout

    url = heroku.run("addons:open", "cloudmailin", "-a", "demo", "--show-url").ok().stdout.strip()
    visit = open_web_url(url)
    assert visit.form.action == f"{peer.url}/sso/login"
    assert (visit.landed.status_code, visit.landed.text) == (
        200,
        "dashboard of demo for developer@example.com",
    )

    heroku.run("addons:destroy", "cloudmailin", "-a", "demo", "--confirm", "demo").ok()
    assert heroku.run("config", "-a", "demo", "--json").ok().stdout.strip() == "{}"
    assert [(r["method"], r["authorized"]) for r in peer.requests] == [
        ("POST", True),
        ("PUT", True),
        ("DELETE", True),
    ]
    assert standin.inspect().addons()[0]["state"] == "deprovisioned"


def test_async_provisioning_shows_creating_until_the_provider_posts_the_action(
    heroku: HerokuCli, standin: RunningStandin, peer: PeerProvider
) -> None:
    peer.mode = "async-hold"
    created = heroku.run("addons:create", "cloudmailin", "-a", "demo").ok()
    assert "being created in the background" in created.stdout
    assert "creating" in heroku.run("addons:info", "cloudmailin", "-a", "demo").ok().stdout

    addon = standin.inspect().addons()[0]
    provision = peer.requests[0]["body"]
    peer._finish(provision)
    assert peer.worker_errors == []
    standin.inspect().wait_for_state(addon["id"], "provisioned")

    assert "created" in heroku.run("addons:info", "cloudmailin", "-a", "demo").ok().stdout
    assert heroku.run("config", "-a", "demo", "--json").ok().stdout.count("CLOUDMAILIN_") == 2
    assert standin.inspect().addon(addon["id"])["config"] == CONFIG


def test_provider_refusal_reaches_the_user_and_leaves_no_addon(
    heroku: HerokuCli, standin: RunningStandin, peer: PeerProvider
) -> None:
    peer.mode = "reject"
    refused = heroku.run("addons:create", "cloudmailin:starter", "-a", "demo", "--", "--target=http://x")
    assert refused.returncode != 0
    assert "target must be an https URL" in refused.stderr
    assert "No add-ons" in heroku.run("addons", "-a", "demo").ok().stdout


def test_unknown_plan_is_refused_by_heroku_without_calling_the_provider(
    heroku: HerokuCli, peer: PeerProvider
) -> None:
    refused = heroku.run("addons:create", "cloudmailin:gold", "-a", "demo")
    assert refused.returncode != 0
    assert "Couldn't find either the add-on service or the add-on plan" in refused.stderr
    assert peer.requests == []


def test_wrong_api_key_is_reported_by_the_cli(standin: RunningStandin, tmp_path: Path) -> None:
    cli = HerokuCli(standin.url, "not-the-key", tmp_path / "home")
    result = cli.run("config", "-a", "demo")
    assert result.returncode != 0
    assert "HEROKU_API_KEY is invalid" in result.stderr
