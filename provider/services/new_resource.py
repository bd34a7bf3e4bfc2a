"""A new add-on's rows (resource, forward address, credential, first app log line) in ONE INSERT.

Provisioning is the hot path of the partner API (bench/provision.py). Through the ORM's unit of
work the four rows cost a round trip each and more web-process CPU than PostgreSQL spent on
them; here they are data-modifying CTEs of a single statement, compiled once with named parameters
so a provision only binds values. PostgreSQL checks the children's foreign keys at the end of
the statement, when the resource row exists. A concurrent INSERT of the same uuid still waits
for the winner's commit and then fails on the primary key (IntegrityError), exactly as a flush
of the ORM objects did, so `provisioning.provision` answers it as a repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Insert, bindparam, insert
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from ..crypto import box_for
from ..models import Resource
from ..models.base import utcnow
from ..models.resource import PROVISIONED, PROVISIONING
from ..settings import Settings
from . import applog_lines, credentials
from .addresses import new_address_values
from .partner_requests import ADDRESS_OPTIONS, ProvisionRequest

_RESOURCE_COLUMNS = (
    "id", "name", "heroku_id", "plan", "region", "state", "options", "callback_url",
    "log_input_url_enc", "oauth_grant_enc", "oauth_grant_expires_at",
)
_ADDRESS_COLUMNS = ("resource_id", "local_id", "target_url", "format", "signing_secret_enc", "size_as_string")
_CREDENTIAL_COLUMNS = ("resource_id", "username", "key_hash", "key_enc")


@dataclass(frozen=True)
class NewRows:
    local_id: str
    credential: credentials.IssuedCredential


def _statement(*, with_log_line: bool) -> Insert:
    tables = Resource.metadata.tables

    def row(prefix: str, columns: tuple[str, ...], *, updated: bool = True) -> dict[str, Any]:
        # Bound names differ from column names, which SQLAlchemy keeps for itself.
        values: dict[str, Any] = {c: bindparam(f"{prefix}{c}") for c in columns}
        values["created_at"] = bindparam("now")
        if updated:
            values["updated_at"] = bindparam("now")
        return values

    ctes = [
        insert(tables["resources"]).values(row("r_", _RESOURCE_COLUMNS)).cte("new_resource"),
        insert(tables["addresses"]).values(row("a_", _ADDRESS_COLUMNS)).cte("new_address"),
    ]
    if with_log_line:
        line = row("l_", ("resource_id", "message"), updated=False)
        ctes.append(insert(tables["app_log_lines"]).values(line).cte("new_log_line"))
    return insert(tables["credentials"]).values(row("c_", _CREDENTIAL_COLUMNS)).add_cte(*ctes)


def insert_new_resource(session: Session, settings: Settings, request: ProvisionRequest) -> NewRows:
    """Insert and commit the rows; must be the session's first statement in its transaction.
    Raises IntegrityError when the uuid exists. Resources Heroku gave no log_input_url (kensa,
    old add-ons) get no log line, because there is nowhere to ship it."""
    box = box_for(settings)
    sync = settings.sync_provisioning
    grant = request.oauth_grant
    address = new_address_values(settings, request.target, request.format)
    pair = credentials.new_pair()
    resource = {
        "id": request.uuid,
        "name": request.name,
        "heroku_id": request.heroku_id,
        "plan": request.plan.name,
        "region": request.region,
        "state": PROVISIONED if sync else PROVISIONING,
        # Target and format live on the address (the target is cleared there on deprovision);
        # the rest are kept.
        "options": Jsonb({k: v for k, v in request.options.items() if k not in ADDRESS_OPTIONS}),
        "callback_url": request.callback_url,
        "log_input_url_enc": box.encrypt(request.log_input_url) if request.log_input_url else None,
        "oauth_grant_enc": box.encrypt(grant.code) if grant else None,
        "oauth_grant_expires_at": grant.expires_at if grant else None,
    }
    params = {
        **{f"r_{c}": v for c, v in resource.items()},
        **{f"a_{c}": v for c, v in address.items()},
        **{f"c_{c}": v for c, v in credentials.credential_values(settings, pair).items()},
        "a_resource_id": request.uuid,
        "c_resource_id": request.uuid,
        "l_resource_id": request.uuid,
        "l_message": applog_lines.provisioned(request.plan.name, finished=sync),
        "now": utcnow(),
    }
    # Straight to psycopg on the session's connection: SQLAlchemy's per-execute work was a fifth
    # of a provision's web CPU. One statement is a transaction of its own, so it runs in
    # autocommit: no BEGIN and COMMIT round trips. The session's commit then only runs the
    # after-commit hooks (jobs, log shipping).
    connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        driver.execute(_sql(request.log_input_url is not None), params)
    except psycopg.IntegrityError as exc:
        raise IntegrityError("new resource", None, exc) from exc
    except psycopg.Error as exc:
        # Going around SQLAlchemy's execute also goes around its error handling: when the
        # connection died under the statement, say so, or the pool would hand it out again and
        # the session's closing ROLLBACK would fail on it after the request was answered.
        lost = driver.broken or driver.closed
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            "new resource", None, exc, psycopg.Error, connection_invalidated=lost
        ) from exc
    return NewRows(address["local_id"], pair)


@cache
def _sql(logged: bool) -> str:
    """The statement in psycopg's parameter style, compiled once per process."""
    return str(_statement(with_log_line=logged).compile(dialect=psycopg_dialect()))
