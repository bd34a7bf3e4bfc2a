"""Every error the web process answers has a readable message in its caller's shape, never a bare 500.

The partner API and everything else machines call answer JSON `{"message"}`; the customer API
under /api/ answers `{"status", "error"}`; the pages people open in a browser (SSO, dashboard)
answer a small HTML page. Blueprints map their own domain errors to answers (views/heroku.py,
views/api.py); what is left, and what every view may meet, is mapped here: HTTP errors, the
database out of reach (503 with Retry-After: Heroku and API clients retry, and the operation did
not happen or did not commit), and anything unexpected (500, logged).
"""

from __future__ import annotations

import logging

import psycopg
from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, RequestURITooLarge

from ..db import database_unavailable
from ..errors import DatabaseUnavailable

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
BROWSER_BLUEPRINTS = frozenset({"sso", "dashboard", "dashboard_account", "dashboard_settings"})
RETRY_AFTER_SECONDS = 5
"""What a 503 asks the caller to wait: PostgreSQL restarts and fail-overs take seconds."""
MAX_URL_LENGTH = 4000
"""Characters of a request target (path and query string, as sent) the app reads. It sits below
the web server's own request-line limit (gunicorn's default 4094 counts the method and the HTTP
version too), so that up to the server's limit a client meets this JSON 414 in its caller's shape
rather than the server's HTML one."""


class ApiError(Exception):
    """A customer API refusal, answered in the API's shape (`api_error`) by any blueprint."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def api_error(status: int, text: str) -> Response:
    """The customer API's error answer, `{"status", "error"}`: the one place its shape is written."""
    response = jsonify(status=status, error=text)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="cloudmailin"'
    return response


def init_app(app: Flask) -> None:
    app.before_request(_refuse_long_urls)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseUnavailable, _unavailable)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(PoolTimeout, _database_error)
    app.register_error_handler(psycopg.Error, _database_error)
    app.register_error_handler(Exception, _unexpected_error)


def _error(code: int, text: str) -> Response:
    """The answer for `code` in the shape the caller of this path reads."""
    if request.path.startswith(API_PREFIX):
        # The CloudMailin API's clients read its shape, also for paths no API view matched.
        return api_error(code, text)
    if request.blueprint in BROWSER_BLUEPRINTS:
        response = Response(render_template("error.html", message=text, code=code), mimetype="text/html")
    else:
        response = jsonify(message=text)
    response.status_code = code
    return response


def _api_error(exc: ApiError) -> Response:
    return api_error(exc.status, exc.error)


def _refuse_long_urls() -> None:
    environ = request.environ
    sent = len(environ.get("RAW_URI") or "")  # gunicorn: the target exactly as sent
    rebuilt = len(environ.get("PATH_INFO", "")) + 1 + len(environ.get("QUERY_STRING", ""))
    if max(sent, rebuilt) > MAX_URL_LENGTH:
        raise RequestURITooLarge(f"The URL is longer than {MAX_URL_LENGTH} characters.")


def _http_error(exc: HTTPException) -> Response:
    return _error(exc.code or 500, exc.description or exc.name)


def _unavailable(exc: DatabaseUnavailable) -> Response:
    response = _error(503, exc.text)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _database_error(exc: Exception) -> Response:
    if not database_unavailable(exc):
        return _unexpected_error(exc)
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    # The driver's own first line says what failed (refused, reset, shut down) and holds no
    # secret; SQLAlchemy's text would add the statement.
    first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    log.warning("database unavailable on %s %s: %s: %s", request.method, request.path,
                type(cause).__name__, first_line)
    return _unavailable(DatabaseUnavailable())


def _unexpected_error(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _error(500, "Internal error; it has been logged.")
