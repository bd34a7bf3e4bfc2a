"""The suppression list through the API (on the `api` blueprint, as `views.messages`):

    GET    /api/v0.1/<username>/suppressions             newest first; `limit` (1-100), `cursor`
    DELETE /api/v0.1/<username>/suppressions/<address>   204; 404 when it is not on the list

After a removal the next message to the address is queued and attempted again. The rules are in
`services.suppressions`, which the dashboard calls too.
"""

from __future__ import annotations

from flask import request
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..services.suppressions import read_suppressions, remove
from .api import ApiError, authenticated, bp, page_response


@bp.get("/<username>/suppressions")
def list_suppressions(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    page = read_suppressions(db.session(), resource.id, request.args)
    return page_response(page, "suppressions", ".list_suppressions", username=username)


@bp.delete("/<username>/suppressions/<path:address>")
def remove_suppression(username: str, address: str) -> ResponseReturnValue:
    resource = authenticated(username)
    session = db.session()
    if not remove(session, resource.id, address):
        raise ApiError(404, f"{address} is not on the suppression list")
    session.commit()
    return "", 204
