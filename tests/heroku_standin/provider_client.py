"""Heroku's calls to the provider: `POST {base_url}`, `PUT/DELETE {base_url}/{id}`.

Exactly what Heroku sends: Basic auth `addon_id:password`, the add-ons media type, a JSON body.
Every exchange is recorded (minus the password) for the inspection API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from tests.heroku_standin.config import StandinConfig
from tests.heroku_standin.state import Call, Store

ADDONS_MEDIA_TYPE = "application/vnd.heroku-addons+json; version=3"


@dataclass(frozen=True)
class ProviderAnswer:
    status: int | None
    body: Any
    error: str | None = None

    @property
    def json_object(self) -> dict[str, Any] | None:
        return self.body if isinstance(self.body, dict) else None

    def message(self) -> str | None:
        body = self.json_object
        if body is None:
            return None
        message = body.get("message")
        return message if isinstance(message, str) and message else None


class ProviderClient:
    def __init__(self, config: StandinConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.session = requests.Session()
        self.session.trust_env = False  # never a proxy: the provider is on this machine

    def provision(self, addon_id: str, body: dict[str, Any]) -> ProviderAnswer:
        return self._call("POST", self.config.provider_base_url, addon_id, body)

    def change_plan(self, addon_id: str, provider_id: str, body: dict[str, Any]) -> ProviderAnswer:
        return self._call("PUT", self._resource_url(provider_id), addon_id, body)

    def deprovision(self, addon_id: str, provider_id: str) -> ProviderAnswer:
        return self._call("DELETE", self._resource_url(provider_id), addon_id, None)

    def _resource_url(self, provider_id: str) -> str:
        return f"{self.config.provider_base_url.rstrip('/')}/{quote(provider_id, safe='')}"

    def _call(self, method: str, url: str, addon_id: str, body: dict[str, Any] | None) -> ProviderAnswer:
        headers = {"Accept": ADDONS_MEDIA_TYPE, "User-Agent": "heroku-standin-addons/3"}
        data = None
        if body is not None:
            headers["Content-Type"] = ADDONS_MEDIA_TYPE
            data = json.dumps(body).encode()
        call = Call(
            direction="to_provider",
            method=method,
            url=url,
            status=None,
            request_body=body,
            headers={**headers, "Authorization": f"Basic {self.config.addon_id}:<password>"},
            addon_id=addon_id,
        )
        try:
            response = self.session.request(
                method,
                url,
                data=data,
                headers=headers,
                auth=(self.config.addon_id, self.config.addon_password),
                timeout=(5.0, self.config.provider_timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            call.error = f"{type(exc).__name__}: {exc}"
            self.store.record(call)
            return ProviderAnswer(None, None, call.error)
        try:
            parsed: Any = response.json() if response.content else None
        except ValueError:
            parsed = response.text
        call.status = response.status_code
        call.response_body = parsed
        self.store.record(call)
        return ProviderAnswer(response.status_code, parsed)
