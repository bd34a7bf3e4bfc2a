"""The dashboard's history pages, on `dashboard.bp` (so `guard` covers them):

    GET  /dashboard/inbound                    the inbound history, filtered and paged as the API is
    GET  /dashboard/inbound/<id>               one inbound message, its target's answer, the kept message
    GET  /dashboard/inbound/<id>/message       the kept message itself, streamed from the store
    POST /dashboard/inbound/<id>/resend        send it again to the target (CSRF token required)
    GET  /dashboard/outbound                   sent messages and each recipient's state
    GET  /dashboard/outbound/<id>              one message, every recipient's events and replies
    GET  /dashboard/suppressions               the suppression list
    POST /dashboard/suppressions/remove        take an address off it (CSRF token required)

Every page calls the service its API calls (`read_history`, `read_messages`, `find_message`,
`read_suppressions`, `remove`) with `request.args` and the session's resource id, so filters,
cursors and their errors are the API's, and an id of another resource is not found (404).
"Send again" calls `resend.request_resend` as the API's resend does; the kept message is read
from the address's store by `services.stored_messages` (a store out of reach is a note, not a 500).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..models import Address, InboundMessage
from ..models.outbound import RECIPIENT_STATES
from ..services import applog, applog_lines, stored_messages
from ..services.addresses import forward_address
from ..services.history import find_delivery, incoming_status, read_history, resends_of
from ..services.outbound_history import find_message, message_status, read_messages
from ..services.outcomes import OUTCOMES, outcome_of
from ..services.paging import InvalidQuery, Page, next_page_params
from ..services.resend import CannotResend, NoSuchHistoryMessage, ResendNotQueued, request_resend
from ..services.suppressions import read_suppressions, remove
from . import current_settings
from .dashboard import bp

INBOUND_FILTERS = ("outcome", "to", "from", "subject", "since", "until")
OUTBOUND_FILTERS = ("state", "to", "since", "until")
AUTHENTICATION_RESULTS = ("dkim", "dmarc")
"""Checks a history row may hold beside SPF (shown when the row has them)."""


def _page(read: object, filters: tuple[str, ...]) -> tuple[Page, str | None, dict[str, str]]:
    """A page read with the request's query, the error to show beside the filters, and the
    filters as given (for the form and the next page's link)."""
    given = {name: request.args.get(name, "") for name in filters}
    try:
        page: Page = read(db.session(), g.resource.id, request.args)  # type: ignore[operator]
    except InvalidQuery as exc:
        return Page([], None), str(exc), given
    return page, None, given


def _next_url(endpoint: str, page: Page) -> str | None:
    if page.next_cursor is None:
        return None
    return url_for(endpoint) + "?" + urlencode(next_page_params(request.args, page.next_cursor))


@bp.get("/dashboard/inbound")
def inbound() -> ResponseReturnValue:
    page, error, given = _page(read_history, INBOUND_FILTERS)
    for item in page.items:
        item["outcome"] = outcome_of(item["status"])
    return render_template(
        "dashboard/inbound.html", page=page, error=error, given=given, outcomes=OUTCOMES,
        next_url=_next_url("dashboard.inbound", page), filtered=any(given.values()),
        forward_address=_forward_address(),
    ), 400 if error else 200


def _delivery(row_id: int) -> InboundMessage:
    row = find_delivery(db.session(), g.resource.id, row_id)
    if row is None:
        abort(404, "No inbound message of this add-on has that id.")
    return row


def _address(row: InboundMessage) -> Address | None:
    return db.session.get(Address, row.address_id) if row.address_id else None


@bp.get("/dashboard/inbound/<int:row_id>")
def inbound_message(row_id: int) -> ResponseReturnValue:
    row = _delivery(row_id)
    item = incoming_status(row)
    checks = {name: getattr(row, f"{name}_result", None) or item.get(name) for name in AUTHENTICATION_RESULTS}
    stored, unreadable = None, None
    if row.stored_message_key:
        try:
            stored = stored_messages.read_preview(current_settings(), _address(row), row.stored_message_key)
        except stored_messages.StoreUnreadable as exc:
            unreadable = exc.text
    resends = [incoming_status(resend) for resend in resends_of(db.session(), g.resource.id, row.id)]
    for resend in resends:
        resend["outcome"] = outcome_of(resend["status"])
    return render_template(
        "dashboard/inbound_message.html", item=item, outcome=outcome_of(row.status), checks=checks,
        stored=stored, unreadable=unreadable, kept=bool(row.stored_message_key), resends=resends,
    )


@bp.get("/dashboard/inbound/<int:row_id>/message")
def inbound_message_download(row_id: int) -> ResponseReturnValue:
    row = _delivery(row_id)
    if not row.stored_message_key:
        abort(404, "This message was not kept by a message store.")
    try:
        body = stored_messages.open_body(current_settings(), _address(row), row.stored_message_key)
    except stored_messages.StoreUnreadable as exc:
        flash(exc.text)
        return redirect(url_for("dashboard.inbound_message", row_id=row.id), code=303)
    headers = {
        "Content-Disposition": f'attachment; filename="{stored_messages.download_name(body.key)}"',
        "Cache-Control": "no-store",
    }
    if body.size is not None:
        headers["Content-Length"] = str(body.size)
    return Response(body.chunks, mimetype="message/rfc822", headers=headers)


@bp.post("/dashboard/inbound/<int:row_id>/resend")
def resend_inbound_message(row_id: int) -> ResponseReturnValue:
    session = db.session()
    try:
        row = request_resend(session, current_settings(), g.resource.id, row_id, "the dashboard")
    except NoSuchHistoryMessage:
        abort(404, "No inbound message of this add-on has that id.")
    except CannotResend as refusal:
        flash(refusal.text)
    except ResendNotQueued:
        flash("The re-send could not be queued just now; try again shortly.")
    else:
        flash(f"Re-send queued as message {row.id}; its result shows below once posted.")
    return redirect(url_for("dashboard.inbound_message", row_id=row_id), code=303)


@bp.get("/dashboard/outbound")
def outbound() -> ResponseReturnValue:
    page, error, given = _page(read_messages, OUTBOUND_FILTERS)
    return render_template(
        "dashboard/outbound.html", page=page, error=error, given=given, states=RECIPIENT_STATES,
        next_url=_next_url("dashboard.outbound", page), filtered=any(given.values()),
    ), 400 if error else 200


@bp.get("/dashboard/outbound/<message_id>")
def outbound_message(message_id: str) -> ResponseReturnValue:
    message = find_message(db.session(), g.resource.id, message_id)
    if message is None:
        abort(404, "No sent message of this add-on has that id.")
    return render_template("dashboard/outbound_message.html", item=message_status(message))


@bp.get("/dashboard/suppressions")
def suppressions() -> ResponseReturnValue:
    page, error, _ = _page(read_suppressions, ())
    return render_template(
        "dashboard/suppressions.html", page=page, error=error,
        next_url=_next_url("dashboard.suppressions", page),
    ), 400 if error else 200


@bp.post("/dashboard/suppressions/remove")
def remove_suppression() -> ResponseReturnValue:
    address = request.form.get("address", "")
    session = db.session()
    removed = bool(address) and remove(session, g.resource.id, address)
    if removed:
        applog.record(
            session, current_settings(), g.resource.id,
            applog_lines.suppression_removed(address, "the dashboard"),
        )
        session.commit()
    if request.headers.get("HX-Request") == "true":
        # htmx swaps the list's row for this answer: nothing once it is gone.
        return ("", 200) if removed else (render_template(
            "dashboard/_suppression_missing.html", address=address), 200)
    if removed:
        flash(f"{address} was removed from the suppression list; mail to it is sent again.")
    else:
        flash(f"{address or 'That address'} is not on the suppression list.")
    return redirect(url_for("dashboard.suppressions"), code=303)


def _forward_address() -> str | None:
    address = g.resource.addresses[0] if g.resource.addresses else None
    return forward_address(current_settings(), address) if address else None
