"""The dashboard's history pages, on `dashboard.bp` (so `guard` covers them):

    GET  /dashboard/inbound                    the inbound history, filtered and paged as the API is
    GET  /dashboard/inbound/<id>               one inbound message and its target's answer
    GET  /dashboard/outbound                   sent messages and each recipient's state
    GET  /dashboard/outbound/<id>              one message, every recipient's events and replies
    GET  /dashboard/suppressions               the suppression list
    POST /dashboard/suppressions/remove        take an address off it (CSRF token required)

Every page calls the service its API calls (`read_history`, `read_messages`, `find_message`,
`read_suppressions`, `remove`) with `request.args` and the session's resource id, so filters,
cursors and their errors are the API's, and an id of another resource is not found (404).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..models.outbound import RECIPIENT_STATES
from ..services import applog, applog_lines
from ..services.addresses import forward_address
from ..services.history import find_delivery, incoming_status, read_history
from ..services.outbound_history import find_message, message_status, read_messages
from ..services.outcomes import OUTCOMES, outcome_of
from ..services.paging import InvalidQuery, Page, next_page_params
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


@bp.get("/dashboard/inbound/<int:row_id>")
def inbound_message(row_id: int) -> ResponseReturnValue:
    row = find_delivery(db.session(), g.resource.id, row_id)
    if row is None:
        abort(404, "No inbound message of this add-on has that id.")
    item = incoming_status(row)
    checks = {name: getattr(row, f"{name}_result", None) or item.get(name) for name in AUTHENTICATION_RESULTS}
    return render_template(
        "dashboard/inbound_message.html", item=item, outcome=outcome_of(row.status), checks=checks,
    )


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
