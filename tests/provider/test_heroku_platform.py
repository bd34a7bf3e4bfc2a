"""The Heroku client against the local stand-in of Heroku (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from provider.heroku_platform import (
    USER_AGENT,
    PermanentPlatformError,
    TemporaryPlatformError,
    exchange_grant_code,
    refresh_tokens,
    retry_after_seconds,
)
from provider.settings import Settings
from tests.heroku_side import ReadingPlatformAPI, SeededAddon, heroku_side, seed_addon
from tests.heroku_standin import RunningStandin
from tests.heroku_standin.faults import inject_fault


@pytest.fixture
def heroku(settings: Settings) -> Iterator[tuple[RunningStandin, Settings]]:
    with heroku_side(settings) as pair:
        yield pair


@pytest.fixture
def addon(heroku: tuple[RunningStandin, Settings]) -> SeededAddon:
    return seed_addon(heroku[0])


def _api(heroku: tuple[RunningStandin, Settings], addon: SeededAddon) -> ReadingPlatformAPI:
    settings = heroku[1]
    return ReadingPlatformAPI(settings, exchange_grant_code(settings, addon.grant_code).access_token)


def test_grant_exchange_returns_tokens_valid_for_eight_hours(heroku, addon):
    running, settings = heroku
    before = datetime.now(UTC)
    tokens = exchange_grant_code(settings, addon.grant_code)
    assert tokens.access_token.startswith("HRKU-standin-")
    assert tokens.refresh_token
    assert before + timedelta(hours=8) <= tokens.expires_at <= datetime.now(UTC) + timedelta(hours=8)
    assert running.inspect().addon(addon.id)["grant_used"] is True


def test_grant_exchange_sends_the_grant_type_and_names_the_addon(heroku, addon):
    running, settings = heroku
    exchange_grant_code(settings, addon.grant_code)
    (call,) = [c for c in running.inspect().calls() if c["url"] == "/oauth/token"]
    assert call["request_body"] == {"grant_type": "authorization_code"}
    assert call["headers"]["User-Agent"] == USER_AGENT
    assert call["headers"]["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_a_used_grant_is_a_permanent_failure(heroku, addon):
    _, settings = heroku
    exchange_grant_code(settings, addon.grant_code)
    with pytest.raises(PermanentPlatformError) as raised:
        exchange_grant_code(settings, addon.grant_code)
    assert raised.value.status == 400


def test_a_wrong_client_secret_is_a_permanent_failure(heroku, addon):
    _, settings = heroku
    wrong = dataclasses.replace(settings, oauth_client_secret="not-the-secret")
    with pytest.raises(PermanentPlatformError) as raised:
        exchange_grant_code(wrong, addon.grant_code)
    assert raised.value.status == 401


def test_an_overloaded_token_endpoint_is_a_temporary_failure_with_its_retry_after(heroku, addon):
    running, settings = heroku
    inject_fault(running.url, "/oauth/token", 503, headers={"Retry-After": "7"})
    with pytest.raises(TemporaryPlatformError) as raised:
        exchange_grant_code(settings, addon.grant_code)
    assert (raised.value.status, raised.value.retry_after) == (503, 7.0)
    assert exchange_grant_code(settings, addon.grant_code).access_token


def test_refresh_gives_a_new_access_token_that_the_platform_accepts(heroku, addon):
    _, settings = heroku
    first = exchange_grant_code(settings, addon.grant_code)
    second = refresh_tokens(settings, first.refresh_token)
    assert second.access_token != first.access_token
    assert ReadingPlatformAPI(settings, second.access_token).get_addon(addon.id)["id"] == addon.id


def test_refresh_with_an_unknown_refresh_token_is_permanent(heroku):
    _, settings = heroku
    with pytest.raises(PermanentPlatformError):
        refresh_tokens(settings, "no-such-refresh-token")


def test_config_patch_sets_the_apps_config_vars(heroku, addon):
    running, _ = heroku
    config = {"CLOUDMAILIN_FORWARD_ADDRESS": "0123456789abcdef0123@cloudmailin.test",
              "CLOUDMAILIN_SMTP_URL": "smtp://u:k@127.0.0.1:587?starttls=true"}
    _api(heroku, addon).update_config(addon.id, config)
    assert running.inspect().addon(addon.id)["config"] == config
    (patch,) = [c for c in running.inspect().calls(addon=addon.id) if c["method"] == "PATCH"]
    assert patch["request_body"] == {"config": [{"name": k, "value": v} for k, v in config.items()]}


def test_platform_calls_ask_for_api_version_3_and_name_the_addon(heroku, addon):
    running, _ = heroku
    _api(heroku, addon).get_addon(addon.id)
    (call,) = running.inspect().calls(addon=addon.id)
    assert call["headers"]["Accept"] == "application/vnd.heroku+json; version=3"
    assert call["headers"]["User-Agent"] == USER_AGENT
    assert call["status"] == 200


def test_provision_action_marks_the_addon_provisioned(heroku, addon):
    running, _ = heroku
    _api(heroku, addon).provision(addon.id)
    assert running.inspect().addon(addon.id)["state"] == "provisioned"


def test_deprovision_action_removes_a_provisioning_addon(heroku, addon):
    running, _ = heroku
    _api(heroku, addon).deprovision(addon.id)
    assert running.inspect().addon(addon.id)["state"] == "deprovisioned"


def test_get_app_returns_the_app_the_addon_belongs_to(heroku, addon):
    api = _api(heroku, addon)
    app_id = api.get_addon(addon.id)["app"]["id"]
    assert api.get_app(app_id)["name"] == "demo"


def test_unknown_addon_is_a_permanent_not_found(heroku, addon):
    with pytest.raises(PermanentPlatformError) as raised:
        _api(heroku, addon).get_addon("00000000-0000-0000-0000-000000000000")
    assert (raised.value.status, raised.value.error_id) == (404, "not_found")


def test_an_expired_or_unknown_token_is_refused_permanently(heroku, addon):
    _, settings = heroku
    with pytest.raises(PermanentPlatformError) as raised:
        ReadingPlatformAPI(settings, "HRKU-not-a-token").get_addon(addon.id)
    assert raised.value.status == 401


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_and_rate_limits_are_temporary(heroku, addon, status):
    running, _ = heroku
    api = _api(heroku, addon)
    inject_fault(running.url, f"/addons/{addon.id}/config", status, method="PATCH")
    with pytest.raises(TemporaryPlatformError) as raised:
        api.update_config(addon.id, {"CLOUDMAILIN_SMTP_URL": "smtp://u:k@h:587"})
    assert raised.value.status == status


def test_rate_limit_carries_the_retry_after_hint(heroku, addon):
    running, _ = heroku
    api = _api(heroku, addon)
    inject_fault(running.url, f"/addons/{addon.id}/actions/provision", 429, headers={"Retry-After": "120"})
    with pytest.raises(TemporaryPlatformError) as raised:
        api.provision(addon.id)
    assert raised.value.retry_after == 120.0


def test_a_refused_connection_is_temporary(settings):
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()
    api = ReadingPlatformAPI(
        dataclasses.replace(settings, heroku_api_url=f"http://127.0.0.1:{port}"), "token"
    )
    with pytest.raises(TemporaryPlatformError):
        api.get_app("demo")


def test_a_peer_that_never_answers_is_a_temporary_timeout(settings):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the connection is accepted by the kernel, never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        api = ReadingPlatformAPI(
            dataclasses.replace(settings, heroku_api_url=url), "token", timeout=(1.0, 0.2)
        )
        with pytest.raises(TemporaryPlatformError):
            api.get_app("demo")


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("30") == 30.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=90), usegmt=True), now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
