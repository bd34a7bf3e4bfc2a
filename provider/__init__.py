"""The Flask app (web process) and the domain shared by all processes.

`create_app` is the only entry point; nothing is configured at import time (Flask's flaskr pattern).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .settings import Settings, get_settings

if TYPE_CHECKING:
    from flask import Flask

MIGRATIONS_DIR = str(Path(__file__).parent / "migrations")


def create_app(settings: Settings | None = None) -> Flask:
    # Imported here, not at the top: the SMTP edge and the workers import the domain (provider.*)
    # and must not load Flask with it.
    from flask import Flask

    from .db import ENGINE_OPTIONS, WEB_POOL, ping_idle_connections
    from .extensions import db, migrate

    settings = settings or get_settings()
    # Our own dashboard files at /static; the pinned npm libraries beside them (views/dashboard_assets.py).
    app = Flask(__name__, static_folder="static/app", static_url_path="/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SECRET_KEY_FALLBACKS=list(settings.secret_key_fallbacks),
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={**ENGINE_OPTIONS, **WEB_POOL},
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        # Partner API bodies are small; this caps what a hostile client can make us read.
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        TESTING=settings.testing,
    )
    app.extensions["cloudmailin_settings"] = settings
    logging.basicConfig(level=settings.log_level)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    db.init_app(app)
    with app.app_context():
        ping_idle_connections(db.engine)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)

    from . import cli

    cli.init_app(app)

    from .views import errors, health

    errors.init_app(app)
    from .views import events_webhook, suppressions  # noqa: F401  (they add routes to api.bp, below)
    app.register_blueprint(health.bp)

    # messages and sending_domains_api add their routes to api.bp
    from .views import addresses_api, api, messages, sending_domains_api  # noqa: F401
    from .views import inbound_domains_api as inbound_domains_api  # adds its routes to api.bp; own line
    from .views import resend_api as resend_api  # adds its route to api.bp; own line

    messages.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(addresses_api.bp)

    from .views import dashboard, dashboard_assets, dashboard_guard, heroku, sso
    from .views import dashboard_domains as dashboard_domains  # adds its routes to dashboard.bp; own line
    from .views import dashboard_history as dashboard_history  # adds its routes to dashboard.bp; own line

    dashboard_guard.init_app(app)
    app.register_blueprint(heroku.bp)
    app.register_blueprint(sso.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(dashboard_assets.bp)
    from .views import dashboard_account as dashboard_account  # own line: merges beside other pages

    app.register_blueprint(dashboard_account.bp)
    from .views import dashboard_settings as dashboard_settings  # own line: merges beside other pages

    app.register_blueprint(dashboard_settings.bp)
    return app
