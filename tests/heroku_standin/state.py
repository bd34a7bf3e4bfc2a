"""The stand-in's memory: apps, add-ons, OAuth grants and tokens, log lines, recorded calls.

One lock guards everything; the condition on it wakes the inspection API's long polls, so tests
wait for an add-on's state without sleeping. Calls to the provider are made with the lock
released, because a provider may call back into the stand-in before it answers.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Clock = Callable[[], datetime]

NAME_WORDS = (
    "shaped",
    "curly",
    "rigid",
    "vertical",
    "flat",
    "round",
    "cubic",
    "spherical",
    "angular",
    "solid",
    "tetrahedral",
    "clear",
    "opaque",
    "deep",
    "concave",
    "convex",
    "sinuous",
    "graceful",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    id: str
    name: str
    region: str
    heroku_id: str
    created_at: datetime
    config_vars: dict[str, str] = field(default_factory=dict)


@dataclass
class Addon:
    id: str
    name: str
    app_id: str
    plan: str
    state: str
    attachment_id: str
    attachment_name: str
    log_token: str
    created_at: datetime
    updated_at: datetime
    options: dict[str, Any] = field(default_factory=dict)
    provider_id: str | None = None
    provision_message: str | None = None
    config_var_names: list[str] = field(default_factory=list)


@dataclass
class Grant:
    code: str
    addon_id: str
    expires_at: datetime
    used: bool = False


@dataclass
class TokenSet:
    access_token: str
    refresh_token: str
    addon_id: str
    expires_at: datetime


@dataclass
class LogLine:
    addon_id: str | None
    app_name: str
    priority: int
    version: int
    timestamp: str
    hostname: str
    app_field: str
    procid: str
    msgid: str
    structured_data: str
    message: str
    user_agent: str


@dataclass
class Call:
    """One HTTP exchange, kept for tests to assert on (secrets in headers are not kept)."""

    direction: str  # "to_provider" (Heroku -> provider) or "to_platform" (-> stand-in)
    method: str
    url: str
    status: int | None
    request_body: Any = None
    response_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    addon_id: str | None = None
    error: str | None = None


class Store:
    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.apps: dict[str, App] = {}
        self.addons: dict[str, Addon] = {}
        # Add-ons Heroku no longer lists, kept (without config or tokens) for the inspection API.
        self.gone: dict[str, Addon] = {}
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, TokenSet] = {}
        self.refresh_tokens: dict[str, TokenSet] = {}
        self.log_lines: list[LogLine] = []
        self.calls: list[Call] = []
        self._app_numbers = itertools.count(1000)

    # -- apps ------------------------------------------------------------------------------
    def add_app(self, name: str, region: str = "us") -> App:
        with self.lock:
            app = App(
                id=str(uuid.uuid4()),
                name=name,
                region=region,
                heroku_id=f"app{next(self._app_numbers)}@heroku.com",
                created_at=self.clock(),
            )
            self.apps[app.id] = app
            return app

    def find_app(self, ident: str) -> App | None:
        with self.lock:
            if ident in self.apps:
                return self.apps[ident]
            return next((a for a in self.apps.values() if a.name == ident), None)

    # -- add-ons ---------------------------------------------------------------------------
    def new_addon_name(self, service: str) -> str:
        with self.lock:
            taken = {a.name for a in self.addons.values()}
            while True:
                name = f"{service}-{secrets.choice(NAME_WORDS)}-{secrets.randbelow(90000) + 10000}"
                if name not in taken:
                    return name

    def addons_of(self, app_id: str) -> list[Addon]:
        with self.lock:
            return [a for a in self.addons.values() if a.app_id == app_id]

    def find_addon(self, ident: str) -> Addon | None:
        with self.lock:
            if ident in self.addons:
                return self.addons[ident]
            return next((a for a in self.addons.values() if a.name == ident), None)

    def config_of(self, addon: Addon) -> dict[str, str]:
        with self.lock:
            app = self.apps[addon.app_id]
            return {k: app.config_vars[k] for k in addon.config_var_names if k in app.config_vars}

    def drop_addon(self, addon: Addon) -> None:
        """Forget an add-on the way Heroku does once it is gone: config vars, grants, tokens."""
        with self.lock:
            app = self.apps.get(addon.app_id)
            if app is not None:
                for name in addon.config_var_names:
                    app.config_vars.pop(name, None)
            self.addons.pop(addon.id, None)
            addon.state = "deprovisioned"
            self.gone[addon.id] = addon
            for code in [c for c, g in self.grants.items() if g.addon_id == addon.id]:
                del self.grants[code]
            for tok in [t for t, s in self.tokens.items() if s.addon_id == addon.id]:
                del self.tokens[tok]
            for tok in [t for t, s in self.refresh_tokens.items() if s.addon_id == addon.id]:
                del self.refresh_tokens[tok]
            self.notify()

    # -- waiting ---------------------------------------------------------------------------
    def notify(self) -> None:
        with self.lock:
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.lock:
            return self.changed.wait_for(predicate, timeout=timeout)

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)
            self.notify()
