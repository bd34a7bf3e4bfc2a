"""The add-on's dashboard, reached only through Heroku SSO (`views/sso.py`): the overview page.

The other pages add their routes to `bp` (views/dashboard_history.py); `dashboard_guard.guard`
makes every one of them need the SSO session and a CSRF token on forms.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, g, render_template
from flask.typing import ResponseReturnValue

from ..daily_counts_cache import RedisPastDaysCache
from ..extensions import db
from ..plans import PLANS
from ..services.addresses import display_target, forward_address
from ..services.credentials import current_credential
from ..services.daily_counts import daily_counts
from ..services.usage import month_usage
from . import current_settings
from .dashboard_guard import guard

bp = guard(Blueprint("dashboard", __name__))

CHART_DAYS = 30


@bp.get("/dashboard")
def show() -> ResponseReturnValue:
    resource = g.resource
    settings = current_settings()
    address = resource.addresses[0] if resource.addresses else None
    credential = current_credential(resource)
    now = datetime.now(UTC)
    inbound_used, outbound_used = month_usage(db.session(), resource.id, now)
    counts = daily_counts(db.session(), resource.id, days=CHART_DAYS, now=now,
                          cache=RedisPastDaysCache(settings.redis_url))
    return render_template(
        "dashboard.html",
        resource=resource,
        plan=PLANS.get(resource.plan),
        forward_address=forward_address(settings, address.local_id) if address else None,
        target=display_target(address.target_url) if address else None,
        smtp_host=settings.smtp_public_host,
        smtp_port=settings.smtp_public_port,
        smtp_username=credential.username if credential else None,
        inbound_used=inbound_used,
        outbound_used=outbound_used,
        counts=counts,
        chart_days=CHART_DAYS,
    )
