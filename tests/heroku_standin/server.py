"""Run the stand-in on a real socket: in a thread for tests, or in the foreground for `make run`.

A real server is needed because the Heroku CLI and the provider are other processes or threads
that speak HTTP to it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from tests.heroku_standin.app import create_app
from tests.heroku_standin.config import StandinConfig
from tests.heroku_standin.context import EXTENSION, Standin
from tests.heroku_standin.state import Clock, utcnow


@dataclass
class RunningStandin:
    url: str
    app: Flask
    server: BaseWSGIServer

    @property
    def parts(self) -> Standin:
        found: Standin = self.app.extensions[EXTENSION]
        return found

    @property
    def config(self) -> StandinConfig:
        return self.parts.config

    def inspect(self) -> StandinInspector:
        return StandinInspector(self.url)


def bind(
    config: StandinConfig, host: str = "127.0.0.1", port: int = 0, *, clock: Clock = utcnow
) -> RunningStandin:
    """Bind first, then build the app with its own URL (it hands that URL to the provider)."""
    holder: dict[str, Flask] = {}

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    server = make_server(host, port, wsgi, threaded=True)
    url = f"http://{host}:{server.server_port}"
    holder["app"] = create_app(config.with_public_url(config.public_url or url), clock=clock)
    return RunningStandin(url=url, app=holder["app"], server=server)


@contextlib.contextmanager
def serving(server: BaseWSGIServer) -> Iterator[None]:
    """Serve from a daemon thread for the `with` block, then shut down and close the socket."""
    thread = threading.Thread(target=server.serve_forever, name="wsgi-server", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_wsgi(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Any WSGI app on a real socket at a free port; yields its base URL."""
    server = make_server(host, 0, app, threaded=True)
    with serving(server):
        yield f"http://{host}:{server.server_port}"


@contextlib.contextmanager
def running_standin(config: StandinConfig, *, clock: Clock = utcnow) -> Iterator[RunningStandin]:
    """The stand-in on 127.0.0.1 at a free port, served from a thread for the `with` block."""
    running = bind(config, clock=clock)
    with serving(running.server):
        yield running


class StandinInspector:
    """A small client of `/_standin/...` for tests (works against a thread or a process)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False

    def _get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(f"{self.url}/_standin{path}", params=params, timeout=75)

    def addons(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/addons").json()
        return result

    def addon(self, ident: str) -> dict[str, Any]:
        response = self._get(f"/addons/{ident}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait_for_state(self, ident: str, state: str, timeout: float = 20) -> dict[str, Any]:
        response = self._get(f"/addons/{ident}/wait", state=state, timeout=timeout)
        body: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise AssertionError(f"add-on {ident} never reached {state}: {body}")
        return body

    def app(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/apps/{name}").json()
        return result

    def logs(self, addon: str | None = None, at_least: int = 0, timeout: float = 20) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"min": at_least, "timeout": timeout}
        if addon:
            params["addon"] = addon
        response = self._get("/logs", **params)
        lines: list[dict[str, Any]] = response.json()
        if response.status_code != 200:
            raise AssertionError(f"fewer than {at_least} log lines arrived: {lines}")
        return lines

    def calls(self, direction: str | None = None, addon: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"direction": direction, "addon": addon}.items() if v}
        result: list[dict[str, Any]] = self._get("/calls", **params).json()
        return result
