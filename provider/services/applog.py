"""Lines for the customer's app log (`heroku logs`), written by any process, shipped by a worker.

`record` stores the line in the caller's transaction, so a line exists exactly when the event
it describes was committed, and asks the process's job queue (provider/jobs.py) to have it
shipped once that transaction commits; how that reaches a worker (a Redis set, one dispatch job
per burst) is provider/log_shipping_queue.py's business. Logging is a side effect: nothing here
raises into the operation that logged because Redis or the log endpoint misbehaves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy.orm import Session

from provider.crypto import box_for
from provider.jobs import queue_for
from provider.models import AppLogLine, Resource
from provider.services.history import storable_text
from provider.settings import Settings


def log_input_url(settings: Settings, resource: Resource) -> str | None:
    if resource.log_input_url_enc is None:
        return None
    return box_for(settings).decrypt(resource.log_input_url_enc)


def record(session: Session, settings: Settings, resource_id: str, message: str) -> None:
    """Add a line for the app's log; shipped after the caller commits. Resources Heroku gave no
    `log_input_url` (kensa, old add-ons) have nowhere to ship to, so nothing is stored."""
    resource = session.get(Resource, resource_id)
    if resource is None or resource.log_input_url_enc is None:
        return
    session.add(AppLogLine(resource_id=resource_id, message=message))
    queue_for(settings).ship_logs_after_commit(session, resource_id)


def line_rows(lines: Iterable[tuple[str, str]], now: datetime) -> Iterator[tuple[str, str, datetime]]:
    """(resource id, message) lines as `LINE_COLUMNS` values for a bulk write (the SMTP edge's
    COPY), for resources the caller knows to have a log drain."""
    return ((resource_id, storable_text(message) or "", now) for resource_id, message in lines)


LINE_COLUMNS = ("resource_id", "message", "created_at")
