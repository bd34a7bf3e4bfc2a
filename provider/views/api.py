"""The customer API under /api/v0.1: `GET /api/v0.1/<username>/incoming_statuses`.

Authentication is CloudMailin's: `Authorization: Bearer <API key>` with the username in the path
(the USER:KEY pair of CLOUDMAILIN_SMTP_URL). Errors are `{"status": <code>, "error": "<text>"}`.

incoming_statuses lists the inbound history newest first. Query parameters:
- `status`: exact (`201`, `404`, `client_timeout`, `unreachable`, `rejected_size`, ...);
- `to`, `from`, `subject`: case-insensitive substring of the envelope recipient, the envelope
  sender, the subject;
- `since`, `until`: ISO 8601 date or date-time (UTC when no offset is given); `since` is
  inclusive, `until` exclusive, and a bare date for `until` includes that whole day;
- `dkim`, `dmarc`: exact DKIM / DMARC result (`dkim=pass`, `dmarc=fail`; see README);
- `limit`: 1 to 100 (default 50); `cursor`: the `next_cursor` of the previous page.
The next page is `next` (a relative URL with the same filters) and the `Link: rel="next"` header;
both are absent on the last page. Paging is by position (received time, id), so rows written
while a client pages do not shift the pages it has not read yet.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from ..db import db
from ..models import InboundMessage, Resource
from ..services.credentials import authenticate
from ..services.history import (
    Cursor,
    HistoryFilter,
    InvalidCursor,
    auth_result_filter,
    history_page,
)

bp = Blueprint("api", __name__, url_prefix="/api/v0.1")

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_FILTER_LENGTH = 998


class ApiError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> ResponseReturnValue:
    response = jsonify(status=exc.status, error=exc.error)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="cloudmailin"'
    return response, exc.status


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    code = exc.code or 500
    return jsonify(status=code, error=exc.description or exc.name), code


def authenticated(username: str) -> Resource:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    resource = None
    if scheme.lower() == "bearer" and key.strip():
        resource = authenticate(db.session(), username, key.strip())
    if resource is None:
        raise ApiError(401, "Unauthorized")
    return resource


@bp.get("/<username>/incoming_statuses")
def incoming_statuses(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    filters = _filters()
    limit = _limit()
    cursor_text = request.args.get("cursor")
    try:
        after = Cursor.decode(cursor_text) if cursor_text else None
    except InvalidCursor as exc:
        raise ApiError(422, str(exc)) from None
    rows, next_cursor = history_page(db.session(), resource.id, filters, limit=limit, after=after)
    body: dict[str, Any] = {"incoming_statuses": [_status(row) for row in rows]}
    next_url = None
    if next_cursor is not None:
        token = next_cursor.encode()
        query = {key: value for key, value in request.args.items() if key != "cursor"}
        query["cursor"] = token
        next_url = url_for(".incoming_statuses", username=username) + "?" + urlencode(query)
        body["next_cursor"] = token
        body["next"] = next_url
    response = jsonify(body)
    if next_url:
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


def _text_arg(name: str) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_FILTER_LENGTH:
        raise ApiError(422, f"{name} is longer than {MAX_FILTER_LENGTH} characters")
    if "\x00" in value:
        # No stored text holds one (PostgreSQL text cannot), and the database refuses it as a parameter.
        raise ApiError(422, f"{name} must not contain NUL characters")
    return value


def _filters() -> HistoryFilter:
    since = _time_arg("since", end_of_day=False)
    until = _time_arg("until", end_of_day=True)
    if since and until and since >= until:
        raise ApiError(422, "since must be before until")
    return HistoryFilter(
        status=_text_arg("status"),
        to=_text_arg("to"),
        sender=_text_arg("from"),
        subject=_text_arg("subject"),
        since=since,
        until=until,
        dkim=_auth_arg("dkim"),
        dmarc=_auth_arg("dmarc"),
    )


def _auth_arg(name: str) -> str | None:
    try:
        return auth_result_filter(name, _text_arg(name))
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


def _time_arg(name: str, *, end_of_day: bool) -> datetime | None:
    value = _text_arg(name)
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end_of_day and day == date.max:
                return None  # the end of the calendar bounds nothing
            start = datetime.combine(day, time(), tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            422,
            f"{name} must be an ISO 8601 date or date-time, such as 2024-05-01 or "
            "2024-05-01T12:00:00Z",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    # ASCII digits only: str.isdigit also accepts superscripts, which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(422, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _status(row: InboundMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "received_at": row.received_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "status": row.status,
        "http_status": row.http_status,
        "from": row.envelope_from,
        "to": row.envelope_to,
        "recipients": list(row.recipients),
        "message_id": row.message_id,
        "subject": row.subject,
        "size": row.size,
        "spf": row.spf_result,
        "dkim": row.dkim_result,
        "dmarc": row.dmarc_result,
        "tls": row.tls,
        "remote_ip": row.remote_ip,
        "target_url": row.target_url,
        "smtp_reply": row.smtp_reply,
        "response_body": row.response_body,
        "target_ms": row.target_ms,
    }
