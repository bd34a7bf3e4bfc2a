"""The pinned front-end libraries, served from this origin (the CSP allows no other).

They are installed from npm by the set-up (`provider/static/package.json` and its lock, `npm ci`
in the Makefile) into provider/static/node_modules; only the files named here are served, so the
rest of node_modules (and package.json) stays private. README says why each library is there.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, send_from_directory
from flask.typing import ResponseReturnValue

NODE_MODULES = Path(__file__).resolve().parent.parent / "static" / "node_modules"

VENDOR_FILES = {
    "pico.css": "@picocss/pico/css/pico.min.css",
    "htmx.js": "htmx.org/dist/htmx.min.js",
    "uplot.js": "uplot/dist/uPlot.iife.min.js",
    "uplot.css": "uplot/dist/uPlot.min.css",
}
CACHE_SECONDS = 3600

bp = Blueprint("dashboard_assets", __name__)


@bp.get("/static/vendor/<name>")
def vendor(name: str) -> ResponseReturnValue:
    path = VENDOR_FILES.get(name)
    if path is None:
        abort(404)
    return send_from_directory(NODE_MODULES, path, max_age=CACHE_SECONDS)
