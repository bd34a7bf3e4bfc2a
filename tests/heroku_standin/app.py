"""`create_app(config)`: the stand-in of Heroku's side as one Flask app."""

from __future__ import annotations

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from tests.heroku_standin import cli_api, faults, inspection, logplex, partner_api, sso
from tests.heroku_standin.config import StandinConfig
from tests.heroku_standin.context import EXTENSION, Standin
from tests.heroku_standin.errors import PlatformError
from tests.heroku_standin.lifecycle import Lifecycle
from tests.heroku_standin.provider_client import ProviderClient
from tests.heroku_standin.state import Clock, Store, utcnow


def create_app(config: StandinConfig, *, clock: Clock = utcnow) -> Flask:
    """`clock` lets a test move time (grant and token expiry) without waiting."""
    app = Flask("heroku_standin")
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    store = Store(clock)
    for name in config.apps:
        store.add_app(name)
    client = ProviderClient(config, store)
    app.extensions[EXTENSION] = Standin(config, store, client, Lifecycle(config, store, client))
    for module in (cli_api, partner_api, logplex, sso, inspection, faults):
        app.register_blueprint(module.blueprint)

    @app.errorhandler(PlatformError)
    def _platform_error(error: PlatformError) -> tuple[Response, int]:
        return jsonify(error.body()), error.status

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        error_id = "not_found" if status == 404 else (error.name or "error").lower().replace(" ", "_")
        return jsonify({"id": error_id, "message": error.description or error.name}), status

    return app
