"""What the stand-in knows about the add-on: the manifest's values and the plans Heroku lists.

On the real platform these live in Heroku's Partner Portal (the uploaded `addon-manifest.json`
and the plan listing); here a test or `make run` hands them over as one frozen value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class ProviderSecrets(Protocol):
    """The provider's copy of the manifest secrets (its Settings has these attributes)."""

    @property
    def addon_password(self) -> str: ...
    @property
    def sso_salt(self) -> str: ...
    @property
    def oauth_client_secret(self) -> str: ...


@dataclass(frozen=True)
class PlanListing:
    """One plan as Heroku lists it for the service (price in cents per month)."""

    name: str
    cents: int


DEFAULT_PLANS = (
    PlanListing("free", 0),
    PlanListing("test", 0),
    PlanListing("starter", 900),
    PlanListing("premium", 2500),
    PlanListing("corp2m", 50000),
)


@dataclass(frozen=True)
class StandinConfig:
    # Where Heroku reaches the provider (the manifest's `base_url` and `sso_url`).
    provider_base_url: str
    provider_sso_url: str
    # The manifest's credentials: Basic auth `addon_id:addon_password`, the SSO salt.
    addon_password: str
    sso_salt: str
    # The OAuth client secret the provider presents at `POST /oauth/token`.
    oauth_client_secret: str
    # What the Heroku CLI sends as `HEROKU_API_KEY`.
    api_key: str
    addon_id: str = "cloudmailin"
    addon_display_name: str = "CloudMailin"
    config_vars_prefix: str = "CLOUDMAILIN"
    config_vars: tuple[str, ...] = ("CLOUDMAILIN_FORWARD_ADDRESS", "CLOUDMAILIN_SMTP_URL")
    plans: tuple[PlanListing, ...] = DEFAULT_PLANS
    default_plan: str = "free"
    # Apps that exist from the start; others are created when the CLI first names them.
    apps: tuple[str, ...] = ("demo",)
    create_apps_on_demand: bool = True
    # The one Heroku user behind the API key (shows up in SSO and OAuth answers).
    user_email: str = "developer@example.com"
    user_id: str = "8a1f6b2e-4d3c-4b5a-9e7f-0123456789ab"
    # Heroku's hard limit for a provider answer.
    provider_timeout: float = 25.0
    # The grant's lifetime and the access token's, as Heroku hands them out.
    grant_lifetime_seconds: int = 300
    access_token_lifetime_seconds: int = 28800
    # Legacy `id`/`token` SSO fields, still sent beside the resource_* ones.
    sso_legacy_fields: bool = True
    # How the stand-in names itself in callback_url, log_input_url and web_url. Filled in by the
    # runners once the port is known; otherwise taken from the request's Host.
    public_url: str = ""

    def plan(self, name: str) -> PlanListing | None:
        short = name.split(":", 1)[1] if ":" in name else name
        return next((p for p in self.plans if p.name == short), None)

    def with_public_url(self, url: str) -> StandinConfig:
        return dataclasses.replace(self, public_url=url.rstrip("/"))

    @classmethod
    def for_provider(
        cls, provider_url: str, secrets: ProviderSecrets, api_key: str, **values: Any
    ) -> StandinConfig:
        """Heroku's side of a provider served at `provider_url` with these secrets."""
        return cls(
            provider_base_url=f"{provider_url.rstrip('/')}/heroku/resources",
            provider_sso_url=f"{provider_url.rstrip('/')}/sso/login",
            addon_password=secrets.addon_password,
            sso_salt=secrets.sso_salt,
            oauth_client_secret=secrets.oauth_client_secret,
            api_key=api_key,
            **values,
        )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], **values: Any) -> StandinConfig:
        """Take id, prefix, config var names and the test URLs from a manifest; the rest (and any
        override, such as the real password the committed placeholder stands for) from `values`."""
        api = manifest.get("api", {})
        test_urls = api.get("test", {})
        derived: dict[str, Any] = {
            "addon_id": manifest.get("id", "cloudmailin"),
            "addon_display_name": manifest.get("name", "CloudMailin"),
            "config_vars_prefix": api.get("config_vars_prefix", "CLOUDMAILIN"),
            "config_vars": tuple(api.get("config_vars", ())),
            "provider_base_url": test_urls.get("base_url", ""),
            "provider_sso_url": test_urls.get("sso_url", ""),
            "addon_password": api.get("password", ""),
            "sso_salt": api.get("sso_salt", ""),
        }
        derived.update(values)
        return cls(**derived)
