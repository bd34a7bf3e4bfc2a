"""The stand-in's side of the partner protocol, spoken to over HTTP as the CLI and a provider do."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.heroku_standin import RunningStandin, running_standin
from tests.heroku_standin.conftest import (
    API_KEY,
    CLIENT_SECRET,
    PLATFORM,
    PeerProvider,
    standin_config,
)

USER = {**PLATFORM, "Authorization": f"Bearer {API_KEY}"}


def create(standin: RunningStandin, app: str = "demo", **options: Any) -> dict[str, Any]:
    body = {"plan": {"name": "cloudmailin:starter"}, "config": options}
    response = requests.post(f"{standin.url}/apps/{app}/addons", json=body, headers=USER, timeout=30)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def bearer(token: str) -> dict[str, str]:
    return {**PLATFORM, "Authorization": f"Bearer {token}"}


def test_provision_call_carries_what_heroku_sends(standin: RunningStandin, peer: PeerProvider) -> None:
    addon = create(standin, target="https://x.test/in", raw=True)
    call = peer.requests[0]
    body = call["body"]
    assert call["authorized"] is True
    assert call["content_type"] == "application/vnd.heroku-addons+json; version=3"
    assert body["uuid"] == addon["id"]
    assert body["name"] == addon["name"]
    assert body["plan"] == "starter"
    assert body["region"] == "amazon-web-services::us-east-1"
    assert body["callback_url"] == f"{standin.url}/addons/{addon['id']}"
    assert body["options"] == {"target": "https://x.test/in", "raw": True}
    assert body["oauth_grant"]["type"] == "authorization_code"
    expires = datetime.strptime(body["oauth_grant"]["expires_at"], "%Y-%m-%dT%H:%M:%S%z")
    assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)
    log_url = urlsplit(body["log_input_url"])
    assert (log_url.username, log_url.path) == ("token", "/logs")
    assert log_url.password and log_url.password.startswith("t.")
    assert body["heroku_id"].endswith("@heroku.com")
    assert addon["state"] == "provisioned"
    assert addon["provision_message"] == "ready"


def test_grant_is_single_use_and_needs_the_client_secret(standin: RunningStandin, peer: PeerProvider) -> None:
    create(standin)
    code = peer.requests[0]["body"]["oauth_grant"]["code"]
    form = {"grant_type": "authorization_code", "code": code, "client_secret": "wrong"}
    refused = requests.post(f"{standin.url}/oauth/token", data=form, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["id"] == "unauthorized"

    tokens = peer.exchange(code)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 28800
    assert set(tokens) >= {"access_token", "refresh_token", "user_id"}

    again = requests.post(
        f"{standin.url}/oauth/token", data={**form, "client_secret": CLIENT_SECRET}, timeout=10
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"

    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_secret": CLIENT_SECRET,
    }
    renewed = requests.post(f"{standin.url}/oauth/token", data=refresh, timeout=10).json()
    assert renewed["access_token"] != tokens["access_token"]
    assert requests.get(
        f"{standin.url}/addons/{peer.requests[0]['body']['uuid']}",
        headers=bearer(renewed["access_token"]),
        timeout=10,
    ).ok


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_standin(peer: PeerProvider, clock: Clock) -> Iterator[RunningStandin]:
    with running_standin(standin_config(peer.url), clock=clock) as running:
        peer.standin_url = running.url
        yield running


def test_grant_expires_after_five_minutes_and_tokens_after_eight_hours(
    timed_standin: RunningStandin, peer: PeerProvider, clock: Clock
) -> None:
    create(timed_standin)
    create(timed_standin, app="other")
    late_code = peer.requests[0]["body"]["oauth_grant"]["code"]
    code = peer.requests[1]["body"]["oauth_grant"]["code"]
    tokens = peer.exchange(code)
    clock.now += timedelta(minutes=5, seconds=1)
    late = requests.post(
        f"{timed_standin.url}/oauth/token",
        data={"grant_type": "authorization_code", "code": late_code, "client_secret": CLIENT_SECRET},
        timeout=10,
    )
    assert (late.status_code, late.json()["error"]) == (400, "invalid_grant")

    addon_url = f"{timed_standin.url}/addons/{peer.requests[1]['body']['uuid']}"
    assert requests.get(addon_url, headers=bearer(tokens["access_token"]), timeout=10).status_code == 200
    clock.now += timedelta(hours=8)
    assert requests.get(addon_url, headers=bearer(tokens["access_token"]), timeout=10).status_code == 401


def test_platform_endpoints_check_token_binding_and_accept_header(
    standin: RunningStandin, peer: PeerProvider
) -> None:
    peer.mode = "async-hold"
    mine, theirs = create(standin), create(standin, app="other")
    token = peer.exchange(peer.requests[0]["body"]["oauth_grant"]["code"])["access_token"]
    mine_url, theirs_url = f"{standin.url}/addons/{mine['id']}", f"{standin.url}/addons/{theirs['id']}"

    assert requests.get(mine_url, headers=PLATFORM, timeout=10).status_code == 401
    wrong_accept = requests.get(mine_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert (wrong_accept.status_code, wrong_accept.json()["id"]) == (400, "bad_request")
    forbidden = requests.post(f"{theirs_url}/actions/provision", headers=bearer(token), timeout=10)
    assert (forbidden.status_code, forbidden.json()["id"]) == (403, "forbidden")
    unknown_var = requests.patch(
        f"{mine_url}/config",
        json={"config": [{"name": "OTHER_URL", "value": "x"}]},
        headers=bearer(token),
        timeout=10,
    )
    assert unknown_var.status_code == 422
    non_string = requests.patch(
        f"{mine_url}/config",
        json={"config": [{"name": "CLOUDMAILIN_SMTP_URL", "value": 5}]},
        headers=bearer(token),
        timeout=10,
    )
    assert non_string.status_code == 422

    app = requests.get(f"{standin.url}/apps/{mine['app']['id']}", headers=bearer(token), timeout=10)
    assert (app.status_code, app.json()["name"]) == (200, "demo")
    other_app = requests.get(f"{standin.url}/apps/{theirs['app']['id']}", headers=bearer(token), timeout=10)
    assert other_app.status_code == 403
    missing = requests.get(
        f"{standin.url}/addons/00000000-0000-0000-0000-000000000000", headers=bearer(token), timeout=10
    )
    assert missing.json() == {
        "id": "not_found",
        "message": "Couldn't find that add-on.",
        "resource": "add_on",
    }


def test_async_provision_failure_posted_by_the_provider_removes_the_addon(
    standin: RunningStandin, peer: PeerProvider
) -> None:
    peer.mode = "async-hold"
    addon = create(standin)
    token = peer.exchange(peer.requests[0]["body"]["oauth_grant"]["code"])["access_token"]
    gave_up = requests.post(
        f"{standin.url}/addons/{addon['id']}/actions/deprovision", headers=bearer(token), timeout=10
    )
    assert gave_up.status_code == 200
    assert standin.inspect().addon(addon["id"])["state"] == "deprovisioned"
    listed = requests.get(f"{standin.url}/apps/demo/addons", headers=USER, timeout=10).json()
    assert listed == []


def test_async_deprovision_finishes_when_the_provider_posts_the_action(
    standin: RunningStandin, peer: PeerProvider
) -> None:
    peer.deprovision_async = True
    addon = create(standin)
    token = peer.exchange(peer.requests[0]["body"]["oauth_grant"]["code"])["access_token"]
    deleted = requests.delete(
        f"{standin.url}/apps/{addon['app']['id']}/addons/{addon['id']}", headers=USER, timeout=10
    )
    assert deleted.json()["state"] == "deprovisioning"
    assert standin.inspect().addon(addon["id"])["state"] == "deprovisioning"
    done = requests.post(
        f"{standin.url}/addons/{addon['id']}/actions/deprovision", headers=bearer(token), timeout=10
    )
    assert done.status_code == 200
    assert standin.inspect().wait_for_state(addon["id"], "deprovisioned")["config"] == {}


def test_plan_change_refused_by_the_provider_keeps_the_old_plan(
    standin: RunningStandin, peer: PeerProvider
) -> None:
    addon = create(standin)
    url = f"{standin.url}/apps/demo/addons/{addon['name']}"
    refused = requests.patch(url, json={"plan": {"name": "cloudmailin:corp2m"}}, headers=USER, timeout=10)
    assert (refused.status_code, refused.json()["message"]) == (422, "corp2m needs a contract")
    assert standin.inspect().addon(addon["id"])["plan"] == "starter"
    assert peer.requests[-1]["body"]["plan"] == "corp2m"


def test_sso_page_posts_fresh_tokens_and_offset_makes_them_stale(standin: RunningStandin) -> None:
    addon = create(standin)
    # The stale page first: fetched later, it would be dated from a later second (a flaky 599).
    stale = requests.get(addon["web_url"], params={"offset": "-600"}, timeout=10).text
    page = requests.get(addon["web_url"], timeout=10).text
    stamp = int(page.split('name="timestamp" value="')[1].split('"')[0])
    stale_stamp = int(stale.split('name="timestamp" value="')[1].split('"')[0])
    assert abs(stamp - datetime.now(UTC).timestamp()) < 60
    assert stamp - stale_stamp >= 600
    for name in (
        "resource_id",
        "resource_token",
        "user_scoped_resource_token",
        "email",
        "user_id",
        "nav-data",
    ):
        assert f'name="{name}"' in page


def test_logplex_receiver_keeps_frames_and_refuses_bad_posts(
    standin: RunningStandin, peer: PeerProvider
) -> None:
    addon = create(standin)
    log_url = urlsplit(peer.requests[0]["body"]["log_input_url"])
    url = f"{log_url.scheme}://{log_url.hostname}:{log_url.port}{log_url.path}"
    auth = (log_url.username or "", log_url.password or "")
    lines = [
        "<190>1 2026-11-25T12:00:00+00:00 host app cloudmailin - - cloudmailin: provisioned plan=starter",
        '<190>1 2026-11-25T12:00:01+00:00 host app cloudmailin - [meta a="\\]"] second line',
    ]
    body = "".join(f"{len(line.encode())} {line}" for line in lines).encode()
    headers = {
        "Content-Type": "application/logplex-1",
        "Logplex-Msg-Count": "2",
        "User-Agent": "cloudmailin/1",
    }
    assert requests.post(url, data=body, headers=headers, auth=auth, timeout=10).status_code == 204
    assert (
        requests.post(url, data=body, headers=headers, auth=("token", "t.wrong"), timeout=10).status_code
        == 401
    )
    text = {**headers, "Content-Type": "text/plain"}
    assert requests.post(url, data=body, headers=text, auth=auth, timeout=10).status_code == 415
    assert (
        requests.post(url, data=b"99 <190>1 short", headers=headers, auth=auth, timeout=10).status_code == 400
    )
    miscounted = {**headers, "Logplex-Msg-Count": "3"}
    assert requests.post(url, data=body, headers=miscounted, auth=auth, timeout=10).status_code == 400

    got = standin.inspect().logs(addon=addon["id"], at_least=2)
    assert [line["message"] for line in got] == ["cloudmailin: provisioned plan=starter", "second line"]
    assert got[1]["structured_data"] == '[meta a="\\]"]'
    assert {line["procid"] for line in got} == {"cloudmailin"}
    assert got[0]["user_agent"] == "cloudmailin/1"


def test_user_endpoints_need_the_api_key(standin: RunningStandin) -> None:
    basic = base64.b64encode(f":{API_KEY}".encode()).decode()
    assert requests.get(
        f"{standin.url}/apps/demo/config-vars", headers={"Authorization": f"Basic {basic}"}, timeout=10
    ).ok
    refused = requests.get(f"{standin.url}/apps/demo/config-vars", headers=bearer("nope"), timeout=10)
    assert (refused.status_code, refused.json()["id"]) == (401, "unauthorized")
    not_json = requests.post(f"{standin.url}/apps/demo/addons", data=b"\xff", headers=USER, timeout=10)
    assert (not_json.status_code, not_json.json()["id"]) == (400, "bad_request")


def test_sync_config_with_undeclared_var_fails_the_create(
    standin: RunningStandin, peer: PeerProvider
) -> None:
    peer.config["CLOUDMAILIN_EXTRA"] = "x"
    response = requests.post(
        f"{standin.url}/apps/demo/addons", json={"plan": {"name": "cloudmailin"}}, headers=USER, timeout=10
    )
    assert response.status_code == 422
    assert "CLOUDMAILIN_EXTRA is not declared" in response.json()["message"]
    assert requests.get(f"{standin.url}/apps/demo/config-vars", headers=USER, timeout=10).json() == {}
