"""Heroku's side for tests of the provider's calls to Heroku: the stand-in on a real socket, with
add-ons seeded straight into its memory (as if Heroku had just sent the provision call), and the
matching resources in our database."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from provider.crypto import SecretBox
from provider.heroku_platform import PlatformAPI
from provider.models import Resource
from provider.models.resource import PROVISIONING
from provider.settings import Settings
from tests.heroku_standin import RunningStandin, StandinConfig, running_standin
from tests.heroku_standin.lifecycle import log_input_url
from tests.heroku_standin.oauth import issue_grant
from tests.heroku_standin.state import Addon

API_KEY = "standin-user-api-key"
# The provider is never called in these tests: add-ons are seeded, not created through the CLI API.
NOWHERE = "http://127.0.0.1:9"


@dataclass(frozen=True)
class SeededAddon:
    id: str
    grant_code: str
    grant_expires_at: datetime
    log_input_url: str


@contextmanager
def heroku_side(settings: Settings) -> Iterator[tuple[RunningStandin, Settings]]:
    """The stand-in, and `settings` pointing both Heroku URLs (API and OAuth) at it."""
    config = StandinConfig(
        provider_base_url=f"{NOWHERE}/heroku/resources",
        provider_sso_url=f"{NOWHERE}/sso/login",
        addon_password=settings.addon_password,
        sso_salt=settings.sso_salt,
        oauth_client_secret=settings.oauth_client_secret,
        api_key=API_KEY,
    )
    with running_standin(config) as running:
        yield running, dataclasses.replace(settings, heroku_api_url=running.url, heroku_id_url=running.url)


def seed_addon(running: RunningStandin, app_name: str = "demo", plan: str = "starter") -> SeededAddon:
    """What Heroku holds right after sending a provision call: an add-on, its grant, its log token."""
    store, config = running.parts.store, running.config
    with store.lock:
        app = store.find_app(app_name) or store.add_app(app_name)
        now = store.clock()
        addon = Addon(
            id=str(uuid.uuid4()), name=store.new_addon_name(config.addon_id), app_id=app.id, plan=plan,
            state="provisioning", attachment_id=str(uuid.uuid4()), attachment_name="CLOUDMAILIN",
            log_token=f"t.{uuid.uuid4()}", created_at=now, updated_at=now,
        )
        store.addons[addon.id] = addon
        grant = issue_grant(store, config, addon.id)
    return SeededAddon(addon.id, grant.code, grant.expires_at, log_input_url(running.url, addon.log_token))


def add_resource(
    session: Session,
    settings: Settings,
    seeded: SeededAddon,
    *,
    state: str = PROVISIONING,
    grant: bool = True,
    log_url: str | None = None,
) -> Resource:
    """The resource as the partner API stores it (grant and log URL encrypted), committed."""
    box = SecretBox(settings.encryption_key)
    resource = Resource(id=seeded.id, plan="starter", state=state, options={})
    if grant:
        resource.oauth_grant_enc = box.encrypt(seeded.grant_code)
        resource.oauth_grant_expires_at = seeded.grant_expires_at
    resource.log_input_url_enc = box.encrypt(log_url or seeded.log_input_url)
    session.add(resource)
    session.commit()
    return resource


def token_calls(running: RunningStandin, grant_type: str | None = None) -> int:
    return sum(
        1 for call in running.inspect().calls(direction="to_platform")
        if call["url"] == "/oauth/token"
        and (grant_type is None or (call["request_body"] or {}).get("grant_type") == grant_type)
    )


class ReadingPlatformAPI(PlatformAPI):
    """The provider's platform client plus the reads only tests make (the provider itself only
    writes: config, provision and deprovision actions), through the same transport and errors."""

    def get_addon(self, addon_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/addons/{self._id(addon_id)}", "GET add-on")
        return found

    def get_app(self, app_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/apps/{self._id(app_id)}", "GET app")
        return found
