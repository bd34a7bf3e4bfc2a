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


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    code = exc.code or 500
    return jsonify(message=exc.description or exc.name), code


def _unexpected_error(exc: Exception) -> ResponseReturnValue:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return jsonify(message="Internal error; it has been logged."), 500
