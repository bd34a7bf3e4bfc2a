"""The sending domains API under /api/v0.1: the domains an add-on may send from.

    POST   /api/v0.1/<username>/sending_domains                {"name": "shop.example"}  201
    GET    /api/v0.1/<username>/sending_domains                the add-on's domains
    GET    /api/v0.1/<username>/sending_domains/<name>         one, with its DNS records
    DELETE /api/v0.1/<username>/sending_domains/<name>         204
    POST   /api/v0.1/<username>/sending_domains/<name>/verify  look the records up now

The routes join the `api` blueprint (its Bearer authentication and `{"status", "error"}` answers);
the rules are `services.sending_domains`, which the dashboard calls too. The service's errors
become HTTP answers here, in `_answer`, and nowhere else.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask.typing import ResponseReturnValue

from ..extensions import db
from ..models import Domain
from ..services.partner_requests import InvalidRequest, json_object
from ..services.sending_domains import (
    DomainTaken,
    InvalidDomainName,
    UnknownSendingDomain,
    add_domain,
    delete_domain,
    dns_records,
    resource_domain,
    resource_domains,
    verify_domain,
)
from . import current_settings
from .api import ApiError, authenticated, bp
from .domain_json import check_json, domain_json
from .errors import api_error

FIELDS = ("name",)


@bp.errorhandler(InvalidDomainName)
@bp.errorhandler(DomainTaken)
@bp.errorhandler(UnknownSendingDomain)
def _answer(exc: Exception) -> ResponseReturnValue:
    status = {InvalidDomainName: 422, DomainTaken: 409, UnknownSendingDomain: 404}[type(exc)]
    return api_error(status, str(exc))


@bp.post("/<username>/sending_domains")
def create_sending_domain(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    try:
        fields = json_object(request.get_data())
    except InvalidRequest as exc:
        raise ApiError(422, f'{exc} Send a JSON object such as {{"name": "mail.example.com"}}.') from None
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ApiError(422, f"Unknown field {unknown[0]!r}; a sending domain is added with its name only.")
    domain = add_domain(db.session(), current_settings(), resource.id, fields.get("name"))
    return _domain(domain), 201


@bp.get("/<username>/sending_domains")
def list_sending_domains(username: str) -> ResponseReturnValue:
    resource = authenticated(username)
    return {"sending_domains": [_domain(domain) for domain in resource_domains(db.session(), resource.id)]}


@bp.get("/<username>/sending_domains/<name>")
def show_sending_domain(username: str, name: str) -> ResponseReturnValue:
    resource = authenticated(username)
    return _domain(resource_domain(db.session(), current_settings(), resource.id, name))


@bp.delete("/<username>/sending_domains/<name>")
def remove_sending_domain(username: str, name: str) -> ResponseReturnValue:
    resource = authenticated(username)
    delete_domain(db.session(), current_settings(), resource.id, name)
    return "", 204


@bp.post("/<username>/sending_domains/<name>/verify")
def verify_sending_domain(username: str, name: str) -> ResponseReturnValue:
    resource = authenticated(username)
    verification = verify_domain(db.session(), current_settings(), resource.id, name)
    body = _domain(verification.domain)
    body["checks"] = [check_json(check) for check in verification.checks]
    return body


def _domain(domain: Domain) -> dict[str, Any]:
    records = dns_records(current_settings(), domain)
    return domain_json(domain, records, dkim_selector=domain.dkim_selector)
