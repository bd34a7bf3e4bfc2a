"""HTTP views (blueprints). Only the web process imports these; other processes use the domain."""

from __future__ import annotations

from flask import current_app

from ..settings import Settings


def current_settings() -> Settings:
    settings: Settings = current_app.extensions["cloudmailin_settings"]
    return settings
