"""The inbound domains API under /api/v0.1: an add-on's own domains, routed to its address.

    POST   /api/v0.1/<username>/inbound_domains                {"name": "shop.example",
                                                                "local_part_regex": "orders|support"}  201
    GET    /api/v0.1/<username>/inbound_domains                the add-on's domains
    GET    /api/v0.1/<username>/inbound_domains/<name>         one, with its DNS records
    DELETE /api/v0.1/<username>/inbound_domains/<name>         204
    POST   /api/v0.1/<username>/inbound_domains/<name>/verify  look the records up now

The routes join the `api` blueprint (its Bearer authentication and `{"status", "error"}` answers);
the rules are `services.inbound_domains`. Its errors become HTTP answers here, in `_answer`, and
nowhere else; the errors it shares with sending domains (a bad name 422, a name taken 409) are
answered by `sending_domains_api`'s handler on the same blueprint.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..models import Domain
from ..services.inbound_domains import (
    CustomDomainLimit,
    NoAddress,
    UnknownInboundDomain,
    add_domain,
    delete_domain,
    dns_records,
    resource_domain,
    resource_domains,
    verify_domain,
)
from ..services.local_parts import InvalidPattern
from ..services.partner_requests import InvalidRequest, json_object
from . import current_settings
from .api import ApiError, authenticated, bp
from .domain_json import check_json, domain_json
from .errors import api_error

FIELDS = ("name", "local_part_regex")


@bp.errorhandler(InvalidPattern)
@bp.errorhandler(CustomDomainLimit)
@bp.errorhandler(NoAddress)
@bp.errorhandler(UnknownInboundDomain)
def _answer(exc: Exception) -> ResponseReturnValue:
    statuses = {InvalidPattern: 422, CustomDomainLimit: 403, NoAddress: 409, UnknownInboundDomain: 404}
    status = statuses[type(exc)]
    return api_error(status, str(exc))


@bp.post("/<username>/inbound_domains")
def create_inbound_domain(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    try:
        fields = json_object(request.get_data())
    except InvalidRequest as exc:
        raise ApiError(422, f'{exc} Send a JSON object such as {{"name": "example.com"}}.') from None
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ApiError(422, f"Unknown field {unknown[0]!r}; an inbound domain has name and local_part_regex.")
    domain = add_domain(db.session(), current_settings(), resource.id, fields.get("name"),
                        fields.get("local_part_regex"))
    return _domain(domain), 201


@bp.get("/<username>/inbound_domains")
def list_inbound_domains(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    return {"inbound_domains": [_domain(domain) for domain in resource_domains(db.session(), resource.id)]}


@bp.get("/<username>/inbound_domains/<name>")
def show_inbound_domain(username: str, name: str) -> ResponseReturnValue:
    resource = authenticated(username)
    return _domain(resource_domain(db.session(), current_settings(), resource.id, name))


@bp.delete("/<username>/inbound_domains/<name>")
def remove_inbound_domain(username: str, name: str) -> ResponseReturnValue:
    resource = authenticated(username)
    delete_domain(db.session(), current_settings(), resource.id, name)
    return "", 204


@bp.post("/<username>/inbound_domains/<name>/verify")
def verify_inbound_domain(username: str, name: str) -> ResponseReturnValue:
    resource = authenticated(username)
    verification = verify_domain(db.session(), current_settings(), resource.id, name)
    body = _domain(verification.domain)
    body["checks"] = [check_json(check) for check in verification.checks]
    return body


def _domain(domain: Domain) -> dict[str, Any]:
    records = dns_records(current_settings(), domain)
    return domain_json(domain, records, local_part_regex=domain.local_part_regex)
