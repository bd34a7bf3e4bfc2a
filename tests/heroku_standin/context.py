"""The stand-in's parts as one object hung on the Flask app, and its own base URL."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request

from tests.heroku_standin.config import StandinConfig
from tests.heroku_standin.lifecycle import Lifecycle
from tests.heroku_standin.provider_client import ProviderClient
from tests.heroku_standin.state import Store

EXTENSION = "heroku_standin"


@dataclass
class Standin:
    config: StandinConfig
    store: Store
    client: ProviderClient
    lifecycle: Lifecycle


def standin() -> Standin:
    found: Standin = current_app.extensions[EXTENSION]
    return found


def base_url() -> str:
    """How the stand-in names itself to the provider: the configured URL, else the Host asked."""
    configured = standin().config.public_url
    return configured or request.host_url.rstrip("/")
