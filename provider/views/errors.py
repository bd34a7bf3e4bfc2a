"""Every error the web process answers is JSON with a readable message, never an HTML page or a bare 500.

Blueprints that need another error shape (the outbound API's `{"status", "error"}`) register their
own handlers; these are the fallback.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

API_PREFIX = "/api/"


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _error(code: int, text: str) -> ResponseReturnValue:
    # The CloudMailin API's clients read `{"status", "error"}`, also for paths no API view matched.
    if request.path.startswith(API_PREFIX):
        return jsonify(status=code, error=text), code
    return jsonify(message=text), code


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    return _error(exc.code or 500, exc.description or exc.name)


def _unexpected_error(exc: Exception) -> ResponseReturnValue:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _error(500, "Internal error; it has been logged.")
