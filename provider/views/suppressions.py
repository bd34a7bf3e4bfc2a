"""The suppression list through the API (on the `api` blueprint, as `views.messages`):

    GET    /api/v0.1/<username>/suppressions             newest first; `limit` (1-100), `cursor`
    DELETE /api/v0.1/<username>/suppressions/<address>   204; 404 when it is not on the list

After a removal the next message to the address is queued and attempted again. The rules are in
`services.suppressions`, which the dashboard calls too.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import urlencode

from flask import jsonify, request, url_for
from flask.typing import ResponseReturnValue

from ..db import db
from ..models import Suppression
from ..services.suppressions import InvalidCursor, Position, remove, suppression_page
from .api import ApiError, _limit, authenticated, bp


def _entry(row: Suppression) -> dict[str, Any]:
    return {
        "address": row.address,
        "reason": row.reason,
        "created_at": row.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


@bp.get("/<username>/suppressions")
def list_suppressions(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    limit = _limit()
    cursor_text = request.args.get("cursor")
    try:
        after = Position.decode(cursor_text) if cursor_text else None
    except InvalidCursor as exc:
        raise ApiError(422, str(exc)) from None
    rows, following = suppression_page(db.session(), resource.id, limit=limit, after=after)
    body: dict[str, Any] = {"suppressions": [_entry(row) for row in rows]}
    if following is not None:
        token = following.encode()
        query = {key: value for key, value in request.args.items() if key != "cursor"}
        query["cursor"] = token
        body["next_cursor"] = token
        body["next"] = url_for(".list_suppressions", username=username) + "?" + urlencode(query)
    response = jsonify(body)
    if following is not None:
        response.headers["Link"] = f'<{body["next"]}>; rel="next"'
    return response


@bp.delete("/<username>/suppressions/<path:address>")
def remove_suppression(username: str, address: str) -> ResponseReturnValue:
    resource = authenticated(username)
    session = db.session()
    if not remove(session, resource.id, address):
        raise ApiError(404, f"{address} is not on the suppression list")
    session.commit()
    return "", 204
