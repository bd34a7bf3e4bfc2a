"""The whole add-on lifecycle driven by the real Heroku CLI, in both provisioning modes.

    heroku CLI (node process) --HEROKU_HOST--> Heroku stand-in (thread, real socket)
        --Basic auth, addons media type--> partner API (provider app, thread, real socket)
    provider jobs (RQ, run in burst by the test) --OAuth, platform API, logplex--> stand-in
    SMTP edge (thread, real sockets) <-- smtplib with the config vars the CLI printed

The provider runs under werkzeug in a thread rather than gunicorn: what is under test is the
protocol over real sockets, and a thread shares the test's settings and database without
translating them into an environment. Jobs run in RQ's SimpleWorker in burst mode from the test,
so each step waits for exactly the work it caused, without sleeping.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from provider import create_app
from provider.models import Resource
from provider.models.resource import DEPROVISIONED
from provider.settings import Settings
from provider.tasks import QUEUES
from tests.cli import HerokuCli
from tests.dnsserver import DnsServer
from tests.heroku_standin import RunningStandin, StandinConfig, running_standin
from tests.heroku_standin.browser import open_web_url
from tests.heroku_standin.server import serving
from tests.smtp_edge.conftest import SENDER, SPF_ZONE, EdgeThread, message, serving_target
from workers.context import use_settings

pytestmark = pytest.mark.e2e

TARGET = "https://app.example/incoming_mails"
FORWARD_ADDRESS = re.compile(r"^[0-9a-f]{20}@cloudmailin\.test$")


@dataclass
class Rig:
    mode: str
    settings: Settings
    provider_url: str
    standin: RunningStandin
    heroku: HerokuCli
    edge: EdgeThread

    def run_jobs(self) -> None:
        """Run every job queued so far (and those they queue) to completion."""
        connection = Redis.from_url(self.settings.redis_url)
        queues = [Queue(name, connection=connection) for name in QUEUES]
        SimpleWorker(queues, connection=connection).work(burst=True)

    def config(self) -> dict[str, str]:
        found: dict[str, str] = json.loads(self.heroku.run("config", "-a", "demo", "--json").ok().stdout)
        return found


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer(SPF_ZONE) as server:
        yield server


@pytest.fixture(params=["sync", "async"])
def rig(request: pytest.FixtureRequest, settings: Settings, dns: DnsServer, tmp_path: Path) -> Iterator[Rig]:
    mode: str = request.param
    holder: dict[str, Flask] = {}
    provider_server = make_server("127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True)
    provider_url = f"http://127.0.0.1:{provider_server.server_port}"
    api_key = secrets.token_hex(16)
    standin_config = StandinConfig.for_provider(provider_url, settings, api_key)
    with running_standin(standin_config) as standin:
        provider_settings = dataclasses.replace(
            settings,
            provisioning_mode=mode,
            heroku_api_url=standin.url,
            heroku_id_url=standin.url,
            public_url=provider_url,
            smtp_data_dir=str(tmp_path / "smtp"),
            dns_nameservers=dns.nameservers,
            smtp_hostname="mx.cloudmailin.test",
        )
        holder["app"] = create_app(provider_settings)
        use_settings(provider_settings)
        edge = EdgeThread(provider_settings)
        try:
            with serving(provider_server):
                yield Rig(
                    mode=mode,
                    settings=provider_settings,
                    provider_url=provider_url,
                    standin=standin,
                    heroku=HerokuCli(standin.url, api_key, tmp_path / "cli-home"),
                    edge=edge,
                )
        finally:
            edge.close()
            use_settings(None)


def smtp_login(rig: Rig, user: str, key: str) -> int:
    """The reply code to AUTH after STARTTLS on the submission port."""
    with smtplib.SMTP("127.0.0.1", rig.edge.submission_port, timeout=30) as smtp:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        smtp.starttls(context=context)
        try:
            return smtp.login(user, key)[0]
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code


def rcpt(rig: Rig, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", rig.edge.mx_port, timeout=30) as smtp:
        smtp.ehlo("client.sender.example")
        assert smtp.mail(SENDER)[0] == 250
        code: int = smtp.rcpt(address)[0]
        smtp.rset()
        return code


def resource(db_session: Session, resource_id: str) -> Resource | None:
    db_session.expire_all()
    return db_session.get(Resource, resource_id)


def test_heroku_cli_drives_create_config_upgrade_open_destroy(rig: Rig, db_session: Session) -> None:
    created = rig.heroku.run(
        "addons:create", "cloudmailin:starter", "-a", "demo", "--", f"--target={TARGET}"
    ).ok()
    [addon] = rig.standin.inspect().addons()
    if rig.mode == "sync":
        assert "Created" in created.stdout
        assert "CLOUDMAILIN_FORWARD_ADDRESS, CLOUDMAILIN_SMTP_URL" in created.stdout
        assert addon["state"] == "provisioned"
    else:
        assert "is being created in the background" in created.stdout
        assert addon["state"] == "provisioning"
    rig.run_jobs()
    addon = rig.standin.inspect().wait_for_state(addon["id"], "provisioned")

    # Heroku's view: the provider answered with the uuid as id, exchanged the grant once.
    assert addon["provider_id"] == addon["id"]
    assert addon["grant_used"] is True
    assert addon["access_tokens"] >= 1
    [provision_call] = rig.standin.inspect().calls(direction="to_provider", addon=addon["id"])
    assert provision_call["status"] == (201 if rig.mode == "sync" else 202)
    info = rig.heroku.run("addons:info", "cloudmailin", "-a", "demo").ok().stdout
    assert "cloudmailin:starter" in info
    assert "created" in info

    # The config vars the user sees work: the address takes mail, the SMTP URL logs in.
    config = rig.config()
    assert set(config) == {"CLOUDMAILIN_FORWARD_ADDRESS", "CLOUDMAILIN_SMTP_URL"}
    address = config["CLOUDMAILIN_FORWARD_ADDRESS"]
    assert FORWARD_ADDRESS.match(address)
    smtp_url = urlsplit(config["CLOUDMAILIN_SMTP_URL"])
    assert (smtp_url.scheme, smtp_url.port, smtp_url.query) == ("smtp", 587, "starttls=true")
    user, key = smtp_url.username or "", smtp_url.password or ""
    assert smtp_login(rig, user, key) == 235
    assert rcpt(rig, address) == 250
    stored = resource(db_session, addon["id"])
    assert stored is not None
    assert stored.plan == "starter"

    upgraded = rig.heroku.run("addons:upgrade", "cloudmailin:premium", "-a", "demo").ok()
    assert "cloudmailin:premium" in upgraded.stderr
    stored = resource(db_session, addon["id"])
    assert stored is not None
    assert stored.plan == "premium"
    assert "cloudmailin:premium" in rig.heroku.run("addons:info", "cloudmailin", "-a", "demo").ok().stdout

    url = rig.heroku.run("addons:open", "cloudmailin", "-a", "demo", "--show-url").ok().stdout.strip()
    assert url == addon_web_url(rig, addon)
    visit = open_web_url(url)
    assert visit.landed.status_code == 200
    assert urlsplit(visit.landed.url).path.startswith("/dashboard")
    assert 'id="heroku-header"' in visit.landed.text
    assert visit.cookies.get("heroku-nav-data") == visit.form.fields["nav-data"]

    rig.heroku.run("addons:destroy", "cloudmailin", "-a", "demo", "--confirm", "demo").ok()
    rig.run_jobs()
    assert rig.config() == {}
    assert "No add-ons" in rig.heroku.run("addons", "-a", "demo").ok().stdout
    gone = resource(db_session, addon["id"])
    assert gone is None or gone.state == DEPROVISIONED
    assert smtp_login(rig, user, key) == 535
    assert rcpt(rig, address) >= 500
    again = requests.put(
        f"{rig.provider_url}/heroku/resources/{addon['id']}",
        json={"plan": "free"},
        auth=(rig.settings.addon_id, rig.settings.addon_password),
        timeout=30,
    )
    assert again.status_code in (404, 410)

    # The app's log stream got the provider's lines for each event.
    lines = [line["message"] for line in rig.standin.inspect().logs(addon=addon["id"], at_least=3)]
    assert any("provisioned" in line for line in lines)
    assert any("plan changed" in line for line in lines)
    assert any("deprovisioned" in line for line in lines)


def addon_web_url(rig: Rig, addon: dict[str, Any]) -> str:
    return f"{rig.standin.url}/sso/addons/{addon['id']}"


def test_bad_target_is_refused_with_the_providers_message(rig: Rig, db_session: Session) -> None:
    refused = rig.heroku.run("addons:create", "cloudmailin:starter", "-a", "demo", "--", "--target=ftp://x")
    assert refused.returncode != 0
    assert "http:// or https://" in refused.stderr
    assert rig.standin.inspect().addons()[0]["state"] == "deprovisioned"
    assert db_session.scalar(select(func.count()).select_from(Resource)) == 0


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _route_notice(rig: Rig) -> Callable[[], None]:
    """A wait for the edge to hear of the next route change (notices arrive asynchronously)."""
    context = rig.edge.server.context
    assert context is not None
    routes = context.routes
    _until(lambda: routes.listening, "the edge to listen for route changes")
    before = routes.generation
    return lambda: _until(lambda: routes.generation > before, "the route change notice")


def test_the_format_chosen_at_create_and_changed_through_the_api_is_what_the_app_receives(
    rig: Rig,
) -> None:
    with serving_target() as target:
        rig.heroku.run(
            "addons:create", "cloudmailin:starter", "-a", "demo", "--",
            f"--target={target.url('/status/201')}", "--format=multipart",
        ).ok()
        rig.run_jobs()
        config = rig.config()
        address = config["CLOUDMAILIN_FORWARD_ADDRESS"]
        smtp_url = urlsplit(config["CLOUDMAILIN_SMTP_URL"])
        with smtplib.SMTP("127.0.0.1", rig.edge.mx_port, timeout=30) as smtp:
            smtp.sendmail(SENDER, [address], message("As a form"))
        [form] = target.requests
        assert (form.header("content-type") or "").startswith("multipart/form-data; boundary=")
        assert form.form()["headers[subject]"] == b"As a form"

        # The app switches to raw_json through the API, with the SMTP URL's user and key.
        api = f"{rig.provider_url}/api/v0.1/{smtp_url.username}/addresses"
        auth = {"Authorization": f"Bearer {smtp_url.password}"}
        [listed] = requests.get(api, headers=auth, timeout=30).json()["addresses"]
        assert (listed["address"], listed["format"]) == (address, "multipart")
        heard = _route_notice(rig)
        changed = requests.patch(
            f"{api}/{listed['id']}", json={"format": "raw_json"}, headers=auth, timeout=30
        )
        assert changed.status_code == 200, changed.text
        heard()
        with smtplib.SMTP("127.0.0.1", rig.edge.mx_port, timeout=30) as smtp:
            smtp.sendmail(SENDER, [address], message("As raw JSON"))
        raw = target.requests[1]
        assert raw.header("content-type") == "application/json"
        assert "Subject: As raw JSON\r\n" in json.loads(raw.body)["message"]


def test_an_unknown_format_is_refused_with_the_list_of_formats(rig: Rig, db_session: Session) -> None:
    refused = rig.heroku.run(
        "addons:create", "cloudmailin:starter", "-a", "demo", "--", f"--target={TARGET}", "--format=xml"
    )
    assert refused.returncode != 0
    assert "Unknown format 'xml'; choose json, multipart, raw or raw_json." in refused.stderr
    assert db_session.scalar(select(func.count()).select_from(Resource)) == 0
