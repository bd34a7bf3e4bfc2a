"""The customer API under /api/v0.1: `GET /api/v0.1/<username>/incoming_statuses`, and the API's
OpenAPI document at `GET /api/v0.1/openapi.json` (`provider/api_spec`).

Authentication is CloudMailin's: `Authorization: Bearer <API key>` with the username in the path
(the USER:KEY pair of CLOUDMAILIN_SMTP_URL). Errors are `{"status": <code>, "error": "<text>"}`.

incoming_statuses lists the inbound history newest first. Query parameters:
- `status`: exact (`201`, `404`, `client_timeout`, `unreachable`, `rejected_size`, ...);
- `outcome`: `accepted`, `rejected` or `deferred` (the SMTP answer's kind: `services.outcomes`);
- `to`, `from`, `subject`: case-insensitive substring of the envelope recipient, the envelope
  sender, the subject;
- `since`, `until`: ISO 8601 date or date-time (UTC when no offset is given); `since` is
  inclusive, `until` exclusive, and a bare date for `until` includes that whole day;
- `dkim`, `dmarc`: exact DKIM / DMARC result (`dkim=pass`, `dmarc=fail`; see README);
- `limit`: 1 to 100 (default 50); `cursor`: the `next_cursor` of the previous page.
The next page is `next` (a relative URL with the same filters) and the `Link: rel="next"` header;
both are absent on the last page. Paging is by position (received time, id), so rows written
while a client pages do not shift the pages it has not read yet. Parsing, paging and the rows'
shape are the history service's (`services.history.read_history`, `services.paging`), which the
dashboard is to call too; a bad parameter is its `InvalidQuery`, answered here as 422.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from ..api_spec import document_bytes
from ..extensions import db
from ..models import Resource
from ..services.credentials import authenticate
from ..services.history import read_history
from ..services.paging import InvalidQuery, Page, next_page_params
from .errors import ApiError, api_error  # ApiError: also imported from here by the other API views

bp = Blueprint("api", __name__, url_prefix="/api/v0.1")


def bearer_key() -> str | None:
    """The key of the request's `Authorization: Bearer <key>`, if it has one."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def authenticated(username: str) -> Resource:
    key = bearer_key()
    resource = authenticate(db.session(), username, key) if key else None
    if resource is None:
        raise ApiError(401, "Unauthorized")
    return resource


@bp.errorhandler(InvalidQuery)
def _invalid_query(exc: InvalidQuery) -> ResponseReturnValue:
    return api_error(422, str(exc))


def page_response(page: Page, name: str, endpoint: str, **path: Any) -> Response:
    """A list answer: `{name: items}`, and while more follow `next_cursor`, `next` (a relative URL
    with the same filters) and `Link: rel="next"`; the same for every list of this API."""
    body: dict[str, Any] = {name: page.items}
    if page.next_cursor is None:
        return jsonify(body)
    next_url = url_for(endpoint, **path) + "?" + urlencode(next_page_params(request.args, page.next_cursor))
    body["next_cursor"] = page.next_cursor
    body["next"] = next_url
    response = jsonify(body)
    response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """The API's description (no authentication: it holds nothing of any account)."""
    return Response(document_bytes(), mimetype="application/json")


@bp.get("/<username>/incoming_statuses")
def incoming_statuses(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    page = read_history(db.session(), resource.id, request.args)
    return page_response(page, "incoming_statuses", ".incoming_statuses", username=username)
