"""`POST /api/v0.1/<username>/incoming_messages/<id>/resend`: send a kept message again.

Answers 202 with the new history row (status `resend_queued`, `resent_from_id` the first's id),
which the worker fills in once it has POSTed (services/resend.py says why it is a job); 409 with
the reason when the message cannot be re-sent (most often: it was not kept, the address had no
message store); 404 for an id that is not this account's. If Redis does not take the job, the new
row says so (`local_error`) and the answer is 503: nothing is lost, the message is still kept.
"""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from ..extensions import db
from ..services.history import incoming_status
from ..services.resend import CannotResend, NoSuchHistoryMessage, ResendNotQueued, request_resend
from . import current_settings
from .api import ApiError, authenticated, bp

_LARGEST_ID = 2**63 - 1


@bp.post("/<username>/incoming_messages/<message_id>/resend")
def resend_incoming_message(username: str, message_id: str) -> ResponseReturnValue:
    # Any id text reaches here, so a wrong key is 401 whatever the id (the API's rule); then an
    # id that is not a history row's (not digits, past bigint) is 404 like an unknown one.
    resource = authenticated(username)
    session = db.session()
    try:
        if not message_id.isascii() or not message_id.isdigit() or int(message_id) > _LARGEST_ID:
            raise NoSuchHistoryMessage(message_id)
        row = request_resend(session, current_settings(), resource.id, int(message_id), "the API")
    except NoSuchHistoryMessage:
        raise ApiError(404, "No such message") from None
    except CannotResend as refusal:
        raise ApiError(409, refusal.text) from None
    except ResendNotQueued:
        raise ApiError(503, "The re-send could not be queued just now; try again shortly.") from None
    return incoming_status(row), 202
