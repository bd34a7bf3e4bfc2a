"""What Heroku does when a user creates, upgrades or destroys the add-on, and how it takes the
provider's answers: the add-on's states (provisioning -> provisioned, deprovisioning -> gone) and
its config vars on the app. Framework-free; the Flask views only translate."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.heroku_standin.config import PlanListing, StandinConfig
from tests.heroku_standin.errors import PlatformError
from tests.heroku_standin.oauth import issue_grant
from tests.heroku_standin.provider_client import ProviderAnswer, ProviderClient
from tests.heroku_standin.representations import REGIONS
from tests.heroku_standin.state import Addon, App, Store

GRANT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


class InvalidConfig(ValueError):
    """The provider sent config that Heroku would not set (unknown name, non-string value)."""


def log_input_url(base_url: str, token: str) -> str:
    parts = urlsplit(base_url)
    netloc = f"token:{token}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/logs", "", ""))


class Lifecycle:
    def __init__(self, config: StandinConfig, store: Store, client: ProviderClient) -> None:
        self.config = config
        self.store = store
        self.client = client

    # -- the CLI's side ---------------------------------------------------------------------
    def resolve_plan(self, requested: str | None) -> PlanListing:
        requested = requested or self.config.addon_id
        service, _, short = requested.partition(":")
        listing = self.config.plan(short or self.config.default_plan)
        if service != self.config.addon_id or listing is None:
            raise PlatformError(
                422,
                "invalid_params",
                f'Couldn\'t find either the add-on service or the add-on plan of "{requested}".',
            )
        return listing

    def create(
        self,
        app: App,
        plan_name: str | None,
        options: Mapping[str, Any],
        attachment_name: str | None,
        name: str | None,
        base_url: str,
    ) -> Addon:
        plan = self.resolve_plan(plan_name)
        attachment = (attachment_name or self.config.config_vars_prefix).upper()
        with self.store.lock:
            if any(a.attachment_name == attachment for a in self.store.addons_of(app.id)):
                raise PlatformError(
                    422,
                    "invalid_params",
                    f"Name {attachment} is already used by another add-on on {app.name}; "
                    "choose another with --as.",
                )
            if name and self.store.find_addon(name) is not None:
                raise PlatformError(422, "invalid_params", f"Name {name} is already taken.")
            now = self.store.clock()
            addon = Addon(
                id=str(uuid.uuid4()),
                name=name or self.store.new_addon_name(self.config.addon_id),
                app_id=app.id,
                plan=plan.name,
                state="provisioning",
                attachment_id=str(uuid.uuid4()),
                attachment_name=attachment,
                log_token=f"t.{uuid.uuid4()}",
                created_at=now,
                updated_at=now,
                options=dict(options),
            )
            self.store.addons[addon.id] = addon
            grant = issue_grant(self.store, self.config, addon.id)
        body = {
            "uuid": addon.id,
            "name": addon.name,
            "plan": plan.name,
            "region": REGIONS.get(app.region, app.region),
            "callback_url": f"{base_url}/addons/{addon.id}",
            "oauth_grant": {
                "code": grant.code,
                "expires_at": grant.expires_at.strftime(GRANT_TIME_FORMAT),
                "type": "authorization_code",
            },
            "options": dict(options),
            "log_input_url": log_input_url(base_url, addon.log_token),
            "heroku_id": app.heroku_id,
        }
        answer = self.client.provision(addon.id, body)
        try:
            self._take_provision_answer(addon, answer)
        except PlatformError:
            self.store.drop_addon(addon)
            raise
        return addon

    def _take_provision_answer(self, addon: Addon, answer: ProviderAnswer) -> None:
        if answer.status not in (200, 201, 202):
            raise self._provider_failure("create", answer)
        body = answer.json_object
        if body is None or body.get("id") in (None, ""):
            raise PlatformError(
                422,
                "provider_error",
                f"The add-on provider answered {answer.status} without a resource id.",
            )
        with self.store.lock:
            if addon.state == "deprovisioned":
                raise PlatformError(422, "provider_error", "The add-on provider gave up provisioning.")
            addon.provider_id = str(body["id"])
            addon.provision_message = answer.message()
            if answer.status != 202:
                try:
                    self.apply_config(addon, body.get("config") or {})
                except InvalidConfig as exc:
                    raise PlatformError(422, "provider_error", str(exc)) from exc
                addon.state = "provisioned"
            addon.updated_at = self.store.clock()
            self.store.notify()

    def change_plan(self, addon: Addon, plan_name: str) -> Addon:
        plan = self.resolve_plan(plan_name)
        with self.store.lock:
            if addon.state != "provisioned":
                raise PlatformError(
                    422, "invalid_params", f"{addon.name} is {addon.state}; its plan cannot change."
                )
            app = self.store.apps[addon.app_id]
        body = {
            "uuid": addon.id,
            "plan": plan.name,
            "heroku_id": app.heroku_id,
            "region": REGIONS.get(app.region, app.region),
        }
        answer = self.client.change_plan(addon.id, addon.provider_id or addon.id, body)
        if answer.status is None or not 200 <= answer.status < 300:
            raise self._provider_failure("change the plan of", answer)
        with self.store.lock:
            body_in = answer.json_object or {}
            try:
                self.apply_config(addon, body_in.get("config") or {})
            except InvalidConfig as exc:
                raise PlatformError(422, "provider_error", str(exc)) from exc
            addon.plan = plan.name
            addon.provision_message = answer.message()
            addon.updated_at = self.store.clock()
            self.store.notify()
        return addon

    def destroy(self, addon: Addon) -> str:
        """Deprovision at the provider; returns the state to report (`deprovisioned` or
        `deprovisioning` when the provider answered 202 and will post the action later)."""
        answer = self.client.deprovision(addon.id, addon.provider_id or addon.id)
        if answer.status == 202:
            with self.store.lock:
                addon.state = "deprovisioning"
                addon.updated_at = self.store.clock()
                self.store.notify()
            return "deprovisioning"
        ok = answer.status is not None and (200 <= answer.status < 300 or answer.status in (404, 410))
        if not ok:
            raise self._provider_failure("destroy", answer)
        with self.store.lock:
            addon.state = "deprovisioned"
            self.store.drop_addon(addon)
        return "deprovisioned"

    def _provider_failure(self, verb: str, answer: ProviderAnswer) -> PlatformError:
        message = answer.message()
        if answer.status in (422, 503) and message:
            return PlatformError(422, "provider_error", message)
        what = answer.error or f"HTTP {answer.status}"
        return PlatformError(
            422,
            "provider_error",
            f"An error was encountered when contacting the add-on partner to {verb} "
            f"{self.config.addon_id} ({what}). Please try again later.",
        )

    # -- the provider's side ----------------------------------------------------------------
    def apply_config(self, addon: Addon, values: Any) -> dict[str, str]:
        """Set config vars the way Heroku checks them: only the manifest's names, string values,
        renamed to the attachment's prefix."""
        pairs = _config_pairs(values)
        for name, value in pairs.items():
            if name not in self.config.config_vars:
                raise InvalidConfig(f"Config var {name} is not declared in the add-on manifest.")
            if not isinstance(value, str):
                raise InvalidConfig(f"Config var {name} must be a string.")
        prefix = self.config.config_vars_prefix
        with self.store.lock:
            app = self.store.apps[addon.app_id]
            for name, value in pairs.items():
                if addon.attachment_name != prefix and name.startswith(prefix + "_"):
                    name = addon.attachment_name + name[len(prefix) :]
                app.config_vars[name] = value
                if name not in addon.config_var_names:
                    addon.config_var_names.append(name)
            addon.updated_at = self.store.clock()
            self.store.notify()
            return self.store.config_of(addon)

    def mark_provisioned(self, addon: Addon) -> None:
        with self.store.lock:
            if addon.state in ("provisioning", "provisioned"):
                addon.state = "provisioned"
                addon.updated_at = self.store.clock()
                self.store.notify()
                return
        raise PlatformError(422, "invalid_params", f"{addon.name} is {addon.state}.")

    def mark_deprovisioned(self, addon: Addon) -> None:
        """Async deprovision finishing, or the provider giving up on provisioning."""
        with self.store.lock:
            if addon.state not in ("provisioning", "deprovisioning"):
                raise PlatformError(
                    422,
                    "invalid_params",
                    f"{addon.name} is {addon.state}; only a provisioning or deprovisioning "
                    "add-on can be marked deprovisioned.",
                )
            addon.state = "deprovisioned"
            addon.updated_at = self.store.clock()
            # While Heroku still waits for the provider's first answer, `create` does the cleanup.
            if addon.provider_id is not None:
                self.store.drop_addon(addon)


def _config_pairs(values: Any) -> dict[str, Any]:
    if isinstance(values, Mapping):
        return dict(values)
    if isinstance(values, list):
        pairs: dict[str, Any] = {}
        for item in values:
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise InvalidConfig('Each config item must be {"name": ..., "value": ...}.')
            pairs[item["name"]] = item.get("value")
        return pairs
    raise InvalidConfig("config must be an object or a list of name/value pairs.")
