"""The one place where the edge turns an outcome into an SMTP reply line."""

from __future__ import annotations

import logging
import uuid

from provider.db import database_unavailable
from provider.errors import DatabaseUnavailable, DomainError, TemporaryError, UnprocessableMessage
from provider.inbound import MessageTooComplex
from provider.services.target_answers import accepted_reply

log = logging.getLogger(__name__)

RCPT_OK = "250 2.1.5 OK"
MAIL_OK = "250 2.1.0 OK"
POSTMASTER_OK = "250 2.0.0 Accepted for the postmaster"


def queued(message_id: uuid.UUID) -> str:
    """Submission's answer once the message is committed: CloudMailin's own words, with the id
    that the API's GET /messages/<id> shows."""
    return f"250 Thanks! Queued as: {message_id}"


def accepted(http_status: int) -> str:
    return accepted_reply(http_status)  # the rule is shared with the dashboard's test message


def error_for(exc: BaseException) -> DomainError:
    """The domain error an exception stands for; anything unexpected is logged and temporary,
    so a bug or an outage defers mail (the sender retries) instead of bouncing it."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, MessageTooComplex):
        return UnprocessableMessage()
    if database_unavailable(exc):
        # An outage, not a bug: the sender retries (451), and one line says so without a trace.
        log.warning("database unreachable while handling mail: %s", type(exc).__name__)
        return DatabaseUnavailable()
    log.error("unexpected error while handling mail", exc_info=exc)
    return TemporaryError()


def reply_for(exc: BaseException) -> str:
    return error_for(exc).smtp_reply
