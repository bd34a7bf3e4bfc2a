"""The add-on's dashboard, reached only through Heroku SSO (`views/sso.py`)."""

from __future__ import annotations

from flask import Blueprint, render_template, session
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..models import Resource
from ..plans import PLANS
from ..services.addresses import display_target, forward_address
from ..services.credentials import current_credential
from . import current_settings
from .sso import refused

bp = Blueprint("dashboard", __name__)

ADDON_NAME = "CloudMailin"


def signed_in_resource() -> Resource | None:
    """The resource the SSO session is bound to, if it is still active."""
    wanted = session.get("resource_id")
    if not isinstance(wanted, str):
        return None
    resource = db.session.get(Resource, wanted)
    if resource is None or not resource.active:
        return None
    return resource


@bp.get("/dashboard")
def show() -> ResponseReturnValue:
    resource = signed_in_resource()
    if resource is None:
        return refused("Open CloudMailin from your app's page on Heroku to sign in.", 403)
    settings = current_settings()
    address = resource.addresses[0] if resource.addresses else None
    credential = current_credential(resource)
    return render_template(
        "dashboard.html",
        addon_name=ADDON_NAME,
        app_name=session.get("app") or resource.app_name or resource.name or resource.id,
        email=session.get("email", ""),
        resource=resource,
        plan=PLANS.get(resource.plan),
        forward_address=forward_address(settings, address.local_id) if address else None,
        target=display_target(address.target_url) if address else None,
        smtp_host=settings.smtp_public_host,
        smtp_port=settings.smtp_public_port,
        smtp_username=credential.username if credential else None,
    )
