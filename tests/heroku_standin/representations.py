"""The JSON shapes of Heroku's platform API (the parts the CLI and the provider read)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tests.heroku_standin.config import PlanListing, StandinConfig
from tests.heroku_standin.state import Addon, App, Store

REGIONS = {"us": "amazon-web-services::us-east-1", "eu": "amazon-web-services::eu-west-1"}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "heroku-standin:" + ":".join(parts)))


def service_json(config: StandinConfig) -> dict[str, Any]:
    return {
        "id": stable_id("service", config.addon_id),
        "name": config.addon_id,
        "human_name": config.addon_display_name,
    }


def plan_json(config: StandinConfig, plan: PlanListing) -> dict[str, Any]:
    return {
        "id": stable_id("plan", config.addon_id, plan.name),
        "name": f"{config.addon_id}:{plan.name}",
        "human_name": plan.name.capitalize(),
        "default": plan.name == config.default_plan,
        "state": "public",
        "price": {"cents": plan.cents, "contract": False, "metered": False, "unit": "month"},
        "addon_service": service_json(config),
    }


def app_ref(app: App) -> dict[str, str]:
    return {"id": app.id, "name": app.name}


def app_json(config: StandinConfig, app: App, base_url: str) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "region": {"id": stable_id("region", app.region), "name": app.region},
        "owner": {"id": config.user_id, "email": config.user_email},
        "created_at": iso(app.created_at),
        "updated_at": iso(app.created_at),
        "web_url": f"https://{app.name}.herokuapp.com/",
        "git_url": f"{base_url}/{app.name}.git",
        "stack": {"name": "heroku-24"},
    }


def web_url(addon: Addon, base_url: str) -> str:
    return f"{base_url}/sso/addons/{addon.id}"


def addon_json(store: Store, config: StandinConfig, addon: Addon, base_url: str) -> dict[str, Any]:
    app = store.apps[addon.app_id]
    listing = config.plan(addon.plan) or PlanListing(addon.plan, 0)
    plan = plan_json(config, listing)
    return {
        "id": addon.id,
        "name": addon.name,
        "app": app_ref(app),
        "addon_service": service_json(config),
        "plan": plan,
        "billed_price": plan["price"],
        "billing_entity": {"id": app.id, "name": app.name, "type": "app"},
        "config_vars": list(addon.config_var_names),
        "provider_id": addon.provider_id,
        "provision_message": addon.provision_message,
        "state": addon.state,
        "actions": [],
        "web_url": web_url(addon, base_url),
        "created_at": iso(addon.created_at),
        "updated_at": iso(addon.updated_at),
    }


def attachment_json(store: Store, config: StandinConfig, addon: Addon, base_url: str) -> dict[str, Any]:
    app = store.apps[addon.app_id]
    return {
        "id": addon.attachment_id,
        "name": addon.attachment_name,
        "namespace": None,
        "app": app_ref(app),
        "addon": {
            "id": addon.id,
            "name": addon.name,
            "app": app_ref(app),
            "plan": plan_json(config, config.plan(addon.plan) or PlanListing(addon.plan, 0)),
        },
        "addon_service": service_json(config),
        "config_vars": list(addon.config_var_names),
        "web_url": web_url(addon, base_url),
        "log_input_url": None,
        "created_at": iso(addon.created_at),
        "updated_at": iso(addon.updated_at),
    }
