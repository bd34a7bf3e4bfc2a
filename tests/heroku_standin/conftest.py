"""Fixtures for the stand-in's own tests: a tiny provider written here as its peer.

The peer is deliberately small: it checks what Heroku must send (Basic auth, media type, SSO
tokens) and answers in the mode a test picks, so the stand-in can be tested before and apart
from the real partner API (which the end-to-end tests in tests/e2e use instead)."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from flask import Flask, Response, jsonify, request

from tests.cli import HerokuCli
from tests.heroku_standin import RunningStandin, StandinConfig, running_standin, serve_wsgi

PASSWORD = "peer-password-0123456789abcdef01"
SALT = "peer-salt-0123456789abcdef012345"
CLIENT_SECRET = "peer-client-secret"
API_KEY = "standin-api-key"
PLATFORM = {"Accept": "application/vnd.heroku+json; version=3"}
CONFIG = {
    "CLOUDMAILIN_FORWARD_ADDRESS": "0123456789abcdef0123@cloudmailin.test",
    "CLOUDMAILIN_SMTP_URL": "smtp://user:key@127.0.0.1:587?starttls=true",
}


@dataclass
class PeerProvider:
    """`mode`: "sync" answers 201 with config; "async" answers 202 and finishes from a thread;
    "async-hold" answers 202 and does nothing; "reject" answers 422."""

    mode: str = "sync"
    deprovision_async: bool = False
    standin_url: str = ""
    url: str = ""
    config: dict[str, str] = field(default_factory=lambda: dict(CONFIG))
    requests: list[dict[str, Any]] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)

    def app(self) -> Flask:
        app = Flask("peer_provider")

        @app.before_request
        def _basic_auth() -> Response | None:
            if request.path.startswith("/sso"):
                return None
            auth = request.authorization
            ok = auth is not None and auth.username == "cloudmailin" and auth.password == PASSWORD
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "content_type": request.headers.get("Content-Type"),
                    "authorized": ok,
                    "body": request.get_json(force=True, silent=True),
                }
            )
            return None if ok else Response('{"message": "bad auth"}', 401)

        @app.post("/heroku/resources")
        def provision() -> tuple[Response, int]:
            body = request.get_json(force=True)
            if self.mode == "reject":
                return jsonify({"message": "target must be an https URL"}), 422
            if self.mode == "sync":
                return jsonify({"id": body["uuid"], "config": self.config, "message": "ready"}), 201
            if self.mode == "async":
                threading.Thread(target=self._finish, args=(body,), daemon=True).start()
            return jsonify({"id": body["uuid"], "message": "setting up"}), 202

        @app.put("/heroku/resources/<rid>")
        def change_plan(rid: str) -> tuple[Response, int]:
            plan = request.get_json(force=True)["plan"]
            if plan == "corp2m":
                return jsonify({"message": "corp2m needs a contract"}), 422
            return jsonify({"message": f"now on {plan}"}), 200

        @app.delete("/heroku/resources/<rid>")
        def deprovision(rid: str) -> tuple[str, int]:
            return ("", 202) if self.deprovision_async else ("", 204)

        @app.post("/sso/login")
        def sso() -> tuple[str, int]:
            form = request.form
            expected = hashlib.sha1(  # noqa: S324
                f"{form['resource_id']}:{SALT}:{form['timestamp']}".encode()
            ).hexdigest()
            if not hmac.compare_digest(expected, form.get("resource_token", "")):
                return "bad token", 403
            return f"dashboard of {form['app']} for {form['email']}", 200

        return app

    def exchange(self, code: str) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code, "client_secret": CLIENT_SECRET}
        answer: dict[str, Any] = requests.post(
            f"{self.standin_url}/oauth/token", data=form, timeout=10
        ).json()
        return answer

    def _finish(self, body: dict[str, Any]) -> None:
        """What an async provider's worker does: grant -> config -> provision action."""
        try:
            token = self.exchange(body["oauth_grant"]["code"])["access_token"]
            headers = {**PLATFORM, "Authorization": f"Bearer {token}"}
            items = [{"name": k, "value": v} for k, v in self.config.items()]
            addon_url = f"{self.standin_url}/addons/{body['uuid']}"
            requests.patch(
                f"{addon_url}/config", json={"config": items}, headers=headers, timeout=10
            ).raise_for_status()
            requests.post(f"{addon_url}/actions/provision", headers=headers, timeout=10).raise_for_status()
        except (requests.RequestException, KeyError) as exc:
            self.worker_errors.append(repr(exc))


def standin_config(peer_url: str, **values: Any) -> StandinConfig:
    secrets = SimpleNamespace(addon_password=PASSWORD, sso_salt=SALT, oauth_client_secret=CLIENT_SECRET)
    return StandinConfig.for_provider(peer_url, secrets, API_KEY, **values)


@pytest.fixture
def peer() -> Iterator[PeerProvider]:
    provider = PeerProvider()
    with serve_wsgi(provider.app()) as url:
        provider.url = url
        yield provider


@pytest.fixture
def standin(peer: PeerProvider) -> Iterator[RunningStandin]:
    with running_standin(standin_config(peer.url)) as running:
        peer.standin_url = running.url
        yield running


@pytest.fixture
def heroku(standin: RunningStandin, tmp_path: Path) -> HerokuCli:
    return HerokuCli(standin.url, API_KEY, tmp_path / "cli-home")
