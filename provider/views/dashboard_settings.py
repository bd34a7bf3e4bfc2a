"""The dashboard's Settings page: per forward address its target, format and size-as-string, a
test message, the signing secret and the store; and the resource's events webhook URL.

Every form saves through the service its API uses (`address_settings.settings_change` and
`change_address`, `events_webhook.set_webhook`), so the rules and their words are the API's; a
refusal is shown beside the field it is about (422, the page again with what was typed). The
address ids in the URLs are looked up by the session's resource (`resource_address`): another
resource's id is 404 like an unknown one. Passwords and secrets never go back into a page
unasked: targets are shown masked (`display_target`) and sending the masked value back keeps the
password; the store's keys are never shown (blank keeps them); the signing secret is revealed by
a POST (no secret in a GET URL, `Cache-Control: no-store`). The guard checks the CSRF token of
every POST. Forms work without JavaScript; with htmx the test result and the revealed secret
replace a part of the page instead of the whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from ..extensions import db
from ..models import Address
from ..plans import plan_named
from ..services import events_webhook
from ..services.address_settings import (
    UnknownAddress,
    change_address,
    resource_address,
    resource_addresses,
    settings_change,
)
from ..services.addresses import (
    InvalidAddressSetting,
    InvalidFormat,
    InvalidTarget,
    display_target,
    forward_address,
)
from ..services.signing_secrets import rotate_signing_secret, signing_secret
from ..services.stores import StoresNotInPlan, shown_config
from ..services.target_test import TargetAnswer, send_test_message
from . import current_settings
from .dashboard_guard import guard

bp = guard(Blueprint("dashboard_settings", __name__))

FORMAT_NAMES = {
    "json": "JSON (application/json)",
    "multipart": "Multipart (multipart/form-data)",
    "raw": "Raw message (multipart, the email as sent)",
    "raw_json": "Raw message in JSON",
}
STORE_TEXT_FIELDS = ("bucket", "prefix", "region", "endpoint_url", "access_key_id", "secret_access_key")


@dataclass
class FormState:
    """One form after a refused POST: what was typed and, per field, what is wrong with it
    (`form`: what belongs to no one field, such as the store's answer to the test write)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@bp.errorhandler(UnknownAddress)
def _unknown(exc: UnknownAddress) -> ResponseReturnValue:
    db.session.rollback()
    return render_template("error.html", message=str(exc), code=404), 404


@bp.get("/dashboard/settings")
def show() -> ResponseReturnValue:
    return _page()


@bp.post("/dashboard/settings/<int:address_id>/delivery")
def save_delivery(address_id: int) -> ResponseReturnValue:
    session, settings = db.session(), current_settings()
    address = resource_address(session, g.resource.id, address_id)
    form = request.form
    fields: dict[str, object] = {
        "format": form.get("format", ""),
        "size_as_string": "size_as_string" in form,
    }
    target = form.get("target", "").strip()
    if target != (display_target(address.target_url) or ""):
        fields["target"] = target  # the masked URL sent back as it was shown keeps the password
    try:
        change_address(session, settings, g.resource.id, address_id, settings_change(fields))
    except InvalidAddressSetting as exc:
        session.rollback()
        name = _delivery_field(exc)
        return _refused(address_id, "delivery", form, name, str(exc))
    flash(f"Saved the delivery settings of {forward_address(settings, address.local_id)}.")
    return _back(address_id)


@bp.post("/dashboard/settings/<int:address_id>/test")
def send_test(address_id: int) -> ResponseReturnValue:
    session = db.session()
    answer = send_test_message(session, current_settings(), g.resource.id, address_id)
    session.commit()  # the app log line
    if request.headers.get("HX-Request"):
        return render_template("dashboard/settings_test_result.html", answer=answer)
    return _page(answers={address_id: answer})


@bp.post("/dashboard/settings/<int:address_id>/secret")
def reveal_secret(address_id: int) -> ResponseReturnValue:
    address = resource_address(db.session(), g.resource.id, address_id)
    secret = signing_secret(current_settings(), address)
    if request.headers.get("HX-Request"):
        response = make_response(render_template("dashboard/settings_secret.html", secret=secret))
    else:
        response = _page(revealed={address_id: secret})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/dashboard/settings/<int:address_id>/secret/rotate")
def rotate_secret(address_id: int) -> ResponseReturnValue:
    rotate_signing_secret(db.session(), current_settings(), g.resource.id, address_id)
    flash("New signing secret issued. The old one stopped working now: from the next message on, "
          "POSTs are signed with the new secret, so update the secret your app checks.")
    return _back(address_id)


@bp.post("/dashboard/settings/<int:address_id>/store")
def save_store(address_id: int) -> ResponseReturnValue:
    session, settings = db.session(), current_settings()
    resource_address(session, g.resource.id, address_id)
    form = request.form
    store: dict[str, object] = {name: form.get(name, "").strip() for name in ("bucket", "prefix")}
    store["region"] = form.get("region", "").strip() or None
    store["endpoint_url"] = form.get("endpoint_url", "").strip() or None
    for name in ("access_key_id", "secret_access_key"):
        if form.get(name, "").strip():  # blank keeps the key saved before
            store[name] = form.get(name, "").strip()
    store["attachments"] = "attachments" in form
    store["messages"] = "messages" in form
    try:
        change_address(session, settings, g.resource.id, address_id, settings_change({"store": store}))
    except (InvalidAddressSetting, StoresNotInPlan) as exc:
        session.rollback()
        return _refused(address_id, "store", form, _store_field(str(exc)), str(exc))
    flash(f"Store saved: a test object was written to bucket {store['bucket']} and deleted again.")
    return _back(address_id)


@bp.post("/dashboard/settings/<int:address_id>/store/remove")
def remove_store(address_id: int) -> ResponseReturnValue:
    session = db.session()
    change_address(session, current_settings(), g.resource.id, address_id, settings_change({"store": None}))
    flash("Store removed: attachments go inline in the POST again, and messages are not kept.")
    return _back(address_id)


@bp.post("/dashboard/settings/events-webhook")
def save_events_webhook() -> ResponseReturnValue:
    session, settings, resource = db.session(), current_settings(), g.resource
    url = request.form.get("url", "").strip()
    if not url:
        events_webhook.clear_webhook(session, settings, resource)
        session.commit()
        flash("Events webhook removed.")
    elif url != events_webhook.shown(settings, resource)["url"]:  # the masked URL keeps the password
        try:
            events_webhook.set_webhook(session, settings, resource, url)
        except InvalidAddressSetting as exc:
            session.rollback()
            state = FormState({"url": url}, {"url": str(exc)})
            return _page(states={"events-webhook": state}, status=422)
        session.commit()
        flash("Events webhook saved.")
    return redirect(url_for("dashboard_settings.show", _anchor="events-webhook"), code=303)


def _delivery_field(exc: InvalidAddressSetting) -> str:
    if isinstance(exc, InvalidTarget):
        return "target"
    return "format" if isinstance(exc, InvalidFormat) else "form"


def _store_field(message: str) -> str:
    """The field a store refusal is about: its message names it (`store.bucket must be ...`)."""
    for name in STORE_TEXT_FIELDS:
        if message.startswith(f"store.{name} "):
            return name
    return "form"


def _refused(
    address_id: int, form_name: str, form: MultiDict[str, str], name: str, text: str
) -> ResponseReturnValue:
    values = {key: form.get(key) for key in form if key not in ("csrf_token", "secret_access_key")}
    state = FormState(values, {name: text})
    return _page(states={f"{form_name}-{address_id}": state}, status=422)


def _back(address_id: int) -> ResponseReturnValue:
    return redirect(url_for("dashboard_settings.show", _anchor=f"address-{address_id}"), code=303)


def _page(
    *, states: dict[str, FormState] | None = None, answers: dict[int, TargetAnswer] | None = None,
    revealed: dict[int, str] | None = None, status: int = 200,
) -> Response:
    settings, resource = current_settings(), g.resource
    addresses = [_shown(address) for address in resource_addresses(db.session(), resource.id)]
    plan = plan_named(resource.plan)
    return make_response(render_template(
        "dashboard/settings.html", addresses=addresses, formats=FORMAT_NAMES,
        stores_in_plan=plan.stores, plan=plan.name,
        webhook_url=events_webhook.shown(settings, resource)["url"],
        states=states or {}, answers=answers or {}, revealed=revealed or {},
    ), status)


def _shown(address: Address) -> dict[str, Any]:
    settings = current_settings()
    return {
        "id": address.id,
        "address": forward_address(settings, address.local_id),
        "target": display_target(address.target_url) or "",
        "format": address.format,
        "size_as_string": address.size_as_string,
        "store": shown_config(settings, address),
    }
