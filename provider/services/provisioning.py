"""The add-on lifecycle Heroku drives: provision, change plan, deprovision (spec/heroku.md).

Each operation is one transaction and commits it, because the jobs it hands to the workers must
only run once its rows are visible (`JobQueue.enqueue_after_commit`; the web passes RQ's).

Provisioning is idempotent on Heroku's uuid, which is the resource's primary key: a repeated POST
finds the row and answers with the same config (the stored key is decrypted, see `credentials`),
and two concurrent POSTs of one uuid race on the primary key, where the loser's INSERT waits for
the winner's commit, fails, rolls back and answers as a repeat.

Deprovisioning stops everything at once (credentials revoked, OAuth tokens and the grant dropped,
custom domains released, the address refuses mail because the SMTP edge only routes to active
resources) and keeps the resource row as a tombstone, without secrets, so a repeated DELETE
answers 204 and the last app log line can still be shipped. `purge_deprovisioned`, run by the
periodic sweep, deletes tombstones older than `PURGE_AFTER` with everything that hangs off them
(addresses, message history, usage, log lines) through the foreign keys' ON DELETE CASCADE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg.errors import LockNotAvailable
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..jobs import COMPLETE_PROVISIONING_JOB, EXCHANGE_GRANT_JOB, PROVISIONING_QUEUE, Job, JobQueue
from ..models import Domain, Resource
from ..models.base import utcnow
from ..models.domain import INBOUND
from ..models.resource import DEPROVISIONED, PROVISIONING
from ..plans import Plan
from ..settings import Settings
from . import applog, applog_lines, credentials, oauth_tokens
from .addresses import display_target, forward_address
from .new_resource import insert_new_resource
from .partner_requests import ProvisionRequest

log = logging.getLogger(__name__)

PURGE_AFTER = timedelta(days=7)


class UnknownResource(LookupError):
    """No resource has this id (answered 404)."""


class ResourceGone(LookupError):
    """The resource was deprovisioned (answered 410)."""


class PlanChangeRefused(ValueError):
    """The resource uses more than the new plan allows; the message says what (answered 422)."""


class ResourceBusy(RuntimeError):
    """Another transaction holds the resource's row longer than Heroku can wait (answered 503)."""


LOCK_WAIT = "2s"
"""How long a partner call waits for the resource's row: Heroku wants an answer within 3 s, and a
worker job may hold the row while it talks to Heroku's platform API."""


def _lock_row(session: Session, resource_id: str) -> Resource | None:
    session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
    try:
        return session.scalars(
            select(Resource).where(Resource.id == resource_id).with_for_update()
        ).one_or_none()
    except OperationalError as exc:
        if not isinstance(exc.orig, LockNotAvailable):
            raise
        session.rollback()
        raise ResourceBusy(
            f"Add-on {resource_id} is being updated by another request; try again in a moment."
        ) from None


@dataclass(frozen=True)
class Provisioned:
    resource_id: str
    # None while the add-on is being provisioned asynchronously: Heroku gets the config later.
    config: dict[str, str] | None
    message: str
    created: bool


@dataclass(frozen=True)
class PlanChanged:
    message: str
    changed: bool


def config_for(session: Session, settings: Settings, resource: Resource) -> dict[str, str]:
    """The config vars Heroku sets on the app; the same every time they are asked for."""
    pair = credentials.current_pair(settings, resource)
    if pair is None:
        pair = credentials.issue_credential(session, settings, resource)
        session.flush()
    return _config(settings, pair, resource.addresses[0].local_id if resource.addresses else None)


def _config(settings: Settings, pair: credentials.IssuedCredential, local_id: str | None) -> dict[str, str]:
    """The config vars, from the add-on's credential and forward address (if it has one)."""
    config = {"CLOUDMAILIN_SMTP_URL": credentials.smtp_url(settings, pair)}
    if local_id is not None:
        config["CLOUDMAILIN_FORWARD_ADDRESS"] = forward_address(settings, local_id)
    return dict(sorted(config.items()))


def provision(
    session: Session, settings: Settings, request: ProvisionRequest, queue: JobQueue
) -> Provisioned:
    # No look-up first: the INSERT is the check, so a new add-on (the common case) costs one
    # autocommitted statement; the session's commit then hands over the jobs and log shipping.
    try:
        answer = _create(session, settings, request, queue)
    except IntegrityError:
        session.rollback()
        existing = session.get(Resource, request.uuid)
        if existing is None:
            raise  # not the uuid race (an 80-bit local id collision): let the caller answer 5xx
        return _repeat(session, settings, existing)
    session.commit()
    log.info("provisioned resource=%s plan=%s mode=%s", request.uuid, request.plan.name,
             settings.provisioning_mode)
    return answer


def _create(
    session: Session, settings: Settings, request: ProvisionRequest, queue: JobQueue
) -> Provisioned:
    new = insert_new_resource(session, settings, request)
    resource_id = request.uuid
    if request.log_input_url is not None:
        queue.ship_logs_after_commit(session, resource_id)
    if not settings.sync_provisioning:
        _enqueue(session, queue, COMPLETE_PROVISIONING_JOB, resource_id)
        message = "CloudMailin is being set up; the config vars will appear in a moment."
        return Provisioned(resource_id, None, message, created=True)
    if request.oauth_grant is not None:
        _enqueue(session, queue, EXCHANGE_GRANT_JOB, resource_id)
    config = _config(settings, new.credential, new.local_id)
    message = _ready_text(
        request.plan.name, forward_address(settings, new.local_id), request.target, request.format
    )
    return Provisioned(resource_id, config, message, True)


def _enqueue(session: Session, queue: JobQueue, func: str, resource_id: str) -> None:
    queue.enqueue_after_commit(session, Job(func, (resource_id,), queue=PROVISIONING_QUEUE))


def _repeat(session: Session, settings: Settings, resource: Resource) -> Provisioned:
    if not resource.active:
        raise ResourceGone(f"Add-on {resource.id} was deprovisioned; create a new one.")
    answer = _answer(session, settings, resource, created=False)
    session.commit()
    return answer


def _answer(session: Session, settings: Settings, resource: Resource, *, created: bool) -> Provisioned:
    if resource.state == PROVISIONING:
        message = "CloudMailin is being set up; the config vars will appear in a moment."
        return Provisioned(resource.id, None, message, created)
    config = config_for(session, settings, resource)
    return Provisioned(resource.id, config, _ready_message(settings, resource), created)


def _ready_message(settings: Settings, resource: Resource) -> str:
    address = resource.addresses[0] if resource.addresses else None
    if address is None:
        return f"CloudMailin is ready on the {resource.plan} plan."
    return _ready_text(
        resource.plan, forward_address(settings, address.local_id), address.target_url, address.format
    )


def _ready_text(plan: str, where: str, target: str | None, fmt: str) -> str:
    if target:
        return (
            f"CloudMailin is ready: mail to {where} is posted to {display_target(target)} "
            f"in the {fmt} format."
        )
    return (
        f"CloudMailin is ready: mail to {where} will be posted to your target URL, "
        "which you can set through the addresses API (PATCH /api/v0.1/<user>/addresses/<id>, "
        "with the user and key of CLOUDMAILIN_SMTP_URL)."
    )


def _active_resource(session: Session, resource_id: str, *, lock: bool = False) -> Resource:
    if lock:
        resource = _lock_row(session, resource_id)
    else:
        resource = session.scalars(select(Resource).where(Resource.id == resource_id)).one_or_none()
    if resource is None:
        raise UnknownResource(f"No CloudMailin add-on has the id {resource_id}.")
    if not resource.active:
        raise ResourceGone(f"Add-on {resource_id} was deprovisioned.")
    return resource


def change_plan(session: Session, settings: Settings, resource_id: str, plan: Plan) -> PlanChanged:
    """Switch plans; limits follow at once because every limit is read from the resource's plan."""
    resource = _active_resource(session, resource_id, lock=True)
    if resource.plan == plan.name:
        session.rollback()
        return PlanChanged(f"Already on the {plan.name} plan; nothing changed.", changed=False)
    _check_fits(session, resource, plan)
    old = resource.plan
    resource.plan = plan.name
    applog.record(session, settings, resource.id, applog_lines.plan_changed(old, plan.name))
    session.commit()
    log.info("plan changed resource=%s from=%s to=%s", resource.id, old, plan.name)
    return PlanChanged(f"CloudMailin is now on the {plan.name} plan (was {old}).", changed=True)


def _check_fits(session: Session, resource: Resource, plan: Plan) -> None:
    domains = session.scalar(
        select(func.count())
        .select_from(Domain)
        .where(Domain.resource_id == resource.id, Domain.kind == INBOUND)
    )
    if domains and domains > plan.custom_domains:
        session.rollback()
        allowed = f"allows {plan.custom_domains}" if plan.custom_domains else "allows none"
        raise PlanChangeRefused(
            f"The {plan.name} plan {allowed} custom domains and this add-on has {domains}; "
            "remove some in the dashboard first."
        )


def deprovision(
    session: Session, settings: Settings, resource_id: str, *, now: datetime | None = None
) -> bool:
    """Stop the resource; False when it was already deprovisioned (a repeated DELETE)."""
    now = now or utcnow()
    resource = _lock_row(session, resource_id)
    if resource is None:
        session.rollback()
        raise UnknownResource(f"No CloudMailin add-on has the id {resource_id}.")
    if not resource.active:
        session.rollback()
        return False
    oauth_tokens.forget_tokens(resource)
    stop_resource(session, settings, resource, applog_lines.deprovisioned(), now=now)
    session.commit()
    log.info("deprovisioned resource=%s", resource.id)
    return True


def stop_resource(
    session: Session, settings: Settings, resource: Resource, line: str, *, now: datetime | None = None
) -> None:
    """What deprovisioning does here, whoever decided it (Heroku's DELETE, or a worker giving up
    provisioning): the resource becomes a tombstone that authenticates nothing, routes no mail and
    frees its domains for other add-ons; `line` goes to the app's log. The caller holds the row
    locked and commits. OAuth tokens are the caller's: a worker giving up still needs them to tell
    Heroku (`workers.jobs.provisioning`), and forgets them afterwards."""
    resource.state = DEPROVISIONED
    resource.deprovisioned_at = now or utcnow()
    credentials.revoke_all(resource, now=resource.deprovisioned_at)
    resource.options = {}
    resource.events_webhook_url_enc = None
    for address in resource.addresses:
        address.target_url = None
    session.execute(delete(Domain).where(Domain.resource_id == resource.id))
    applog.record(session, settings, resource.id, line)


def purge_deprovisioned(
    session: Session, *, now: datetime | None = None, after: timedelta = PURGE_AFTER
) -> int:
    """Delete resources deprovisioned more than `after` ago, with all their data; returns how many."""
    cutoff = (now or utcnow()) - after
    result = session.execute(
        delete(Resource).where(Resource.state == DEPROVISIONED, Resource.deprovisioned_at < cutoff)
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
