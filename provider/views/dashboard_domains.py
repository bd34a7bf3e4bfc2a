"""The dashboard's Domains page, on `dashboard.bp` (so `guard` covers it): custom inbound domains
and sending domains, the DNS records to publish, "verify now" and delete.

    GET  /dashboard/domains                              both kinds, their state and records
    POST /dashboard/domains/inbound                      add an inbound domain (name, local-part regex)
    POST /dashboard/domains/sending                      add a sending domain (name)
    GET  /dashboard/domains/<kind>/<name>                one domain and its records
    POST /dashboard/domains/<kind>/<name>/verify         look the records up now, show each check
    GET  /dashboard/domains/<kind>/<name>/delete         the confirmation step
    POST /dashboard/domains/<kind>/<name>/delete         delete it

Every action calls the service the API calls (`services.inbound_domains`,
`services.sending_domains`) with the session's resource id, so the rules, the plan's limit, the
texts and the app log lines are the API's, and another add-on's domain is not found (404) like an
unknown one. The services' refusals of an add are shown beside the field they concern
(`ADD_REFUSALS`, the one place they are mapped here), with the API's status codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import abort, flash, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField

from ..extensions import db
from ..models import Domain
from ..models.domain import INBOUND, SENDING
from ..plans import PLANS
from ..services import inbound_domains, sending_domains
from ..services.domain_names import DnsRecord, DomainTaken, InvalidDomainName, Verification
from ..services.local_parts import InvalidPattern
from ..services.paging import iso_time
from ..settings import Settings
from . import current_settings
from .dashboard import bp
from .sso import refused

KIND_PATH = f"<any({INBOUND}, {SENDING}):kind>/<name>"

ADD_REFUSALS: dict[type[Exception], tuple[str, int]] = {
    InvalidDomainName: ("name", 422),
    DomainTaken: ("name", 409),
    inbound_domains.CustomDomainLimit: ("name", 403),
    inbound_domains.NoAddress: ("name", 409),
    InvalidPattern: ("regex", 422),
}
"""Which field each refusal of an add is shown beside, and the status of the page (the API's)."""


class InboundDomainForm(FlaskForm):
    # Ids of their own: both add forms are on one page.
    name = StringField("Domain", id="inbound-name")
    regex = StringField("Local-part pattern (optional)", id="inbound-regex")
    submit = SubmitField("Add inbound domain", id="inbound-submit")


class SendingDomainForm(FlaskForm):
    name = StringField("Domain", id="sending-name")
    submit = SubmitField("Add sending domain", id="sending-submit")


class ConfirmForm(FlaskForm):
    """The delete step: a button and the CSRF token, nothing else."""


def _sending_records(settings: Settings, domain: Domain) -> list[DnsRecord]:
    # Every domain added through the service has a key; a row written by hand (support, tests)
    # may not, and is listed without records rather than failing the whole page.
    return sending_domains.dns_records(settings, domain) if domain.dkim_private_key_enc else []


@dataclass(frozen=True)
class Kind:
    """One kind of domain: its service's operations and how the page names it."""

    slug: str
    title: str
    listed: Callable[..., list[Domain]]
    find: Callable[..., Domain]
    records: Callable[[Settings, Domain], list[DnsRecord]]
    verify: Callable[..., Verification]
    delete: Callable[..., None]
    unknown: type[LookupError]
    consequence: str
    """What deleting one does, said on the confirmation step."""


KINDS = {
    INBOUND: Kind(
        INBOUND, "custom inbound domain", inbound_domains.resource_domains, inbound_domains.resource_domain,
        inbound_domains.dns_records, inbound_domains.verify_domain, inbound_domains.delete_domain,
        inbound_domains.UnknownInboundDomain,
        "Mail to it is refused from then on; adding it again needs verifying again.",
    ),
    SENDING: Kind(
        SENDING, "sending domain", sending_domains.resource_domains, sending_domains.resource_domain,
        _sending_records, sending_domains.verify_domain, sending_domains.delete_domain,
        sending_domains.UnknownSendingDomain,
        "Its DKIM key is deleted and mail from it is refused from then on; adding it again makes a new key "
        "to publish.",
    ),
}


@dataclass(frozen=True)
class Shown:
    """A domain as the page shows it."""

    kind: Kind
    name: str
    local_part_regex: str | None
    verified_at: str | None
    created_at: str | None
    records: list[DnsRecord]


def _shown(kind: Kind, domain: Domain) -> Shown:
    return Shown(kind, domain.name, domain.local_part_regex, iso_time(domain.verified_at),
                 iso_time(domain.created_at), kind.records(current_settings(), domain))


def _list_page(inbound_form: InboundDomainForm | None = None, sending_form: SendingDomainForm | None = None,
               status: int = 200) -> ResponseReturnValue:
    session, resource = db.session(), g.resource
    listed = {slug: [_shown(kind, domain) for domain in kind.listed(session, resource.id)]
              for slug, kind in KINDS.items()}
    return render_template(
        "dashboard/domains.html", listed=listed, plan=PLANS.get(resource.plan),
        inbound_form=inbound_form or InboundDomainForm(formdata=None),
        sending_form=sending_form or SendingDomainForm(formdata=None),
    ), status


def _found(kind: Kind, name: str) -> Domain:
    """The session's add-on's domain of that kind, else 404 (another add-on's included)."""
    try:
        return kind.find(db.session(), current_settings(), g.resource.id, name)
    except kind.unknown as exc:
        abort(404, str(exc))


def _refused_form() -> ResponseReturnValue:
    # The guard refuses a missing or forged CSRF token first; a form fails for nothing else.
    return refused("The form expired or did not come from this page; open it again.", 400)


def _refused_add(form: FlaskForm, exc: Exception, **forms: FlaskForm) -> ResponseReturnValue:
    field, status = ADD_REFUSALS[type(exc)]
    form[field].errors = [str(exc)]
    return _list_page(status=status, **forms)


def _added(domain: Domain) -> ResponseReturnValue:
    flash(f"{domain.name} was added. Publish its DNS records, then verify it.")
    return redirect(url_for("dashboard.domain_show", kind=domain.kind, name=domain.name), code=303)


@bp.get("/dashboard/domains")
def domains() -> ResponseReturnValue:
    return _list_page()


@bp.post("/dashboard/domains/inbound")
def domain_add_inbound() -> ResponseReturnValue:
    form = InboundDomainForm()
    if not form.validate_on_submit():
        return _refused_form()
    pattern = form.regex.data or None  # an empty field: every local part (a catch-all)
    try:
        domain = inbound_domains.add_domain(db.session(), current_settings(), g.resource.id, form.name.data,
                                            pattern)
    except tuple(ADD_REFUSALS) as exc:
        return _refused_add(form, exc, inbound_form=form)
    return _added(domain)


@bp.post("/dashboard/domains/sending")
def domain_add_sending() -> ResponseReturnValue:
    form = SendingDomainForm()
    if not form.validate_on_submit():
        return _refused_form()
    try:
        domain = sending_domains.add_domain(db.session(), current_settings(), g.resource.id, form.name.data)
    except tuple(ADD_REFUSALS) as exc:
        return _refused_add(form, exc, sending_form=form)
    return _added(domain)


@bp.get(f"/dashboard/domains/{KIND_PATH}")
def domain_show(kind: str, name: str) -> ResponseReturnValue:
    shown = _shown(KINDS[kind], _found(KINDS[kind], name))
    return render_template("dashboard/domains_domain.html", domain=shown, verification=None)


@bp.post(f"/dashboard/domains/{KIND_PATH}/verify")
def domain_verify(kind: str, name: str) -> ResponseReturnValue:
    of_kind = KINDS[kind]
    shown = _shown(of_kind, _found(of_kind, name))
    if not shown.records:  # nothing to look up (a sending domain without a key, see _sending_records)
        return render_template("dashboard/domains_domain.html", domain=shown, verification=None)
    try:
        verification = of_kind.verify(db.session(), current_settings(), g.resource.id, name)
    except of_kind.unknown as exc:
        abort(404, str(exc))
    return render_template("dashboard/domains_domain.html", domain=_shown(of_kind, verification.domain),
                           verification=verification)


@bp.get(f"/dashboard/domains/{KIND_PATH}/delete")
def domain_confirm_delete(kind: str, name: str) -> ResponseReturnValue:
    shown = _shown(KINDS[kind], _found(KINDS[kind], name))
    return render_template("dashboard/domains_delete.html", domain=shown)


@bp.post(f"/dashboard/domains/{KIND_PATH}/delete")
def domain_delete(kind: str, name: str) -> ResponseReturnValue:
    of_kind = KINDS[kind]
    if not ConfirmForm().validate_on_submit():
        return _refused_form()
    try:
        of_kind.delete(db.session(), current_settings(), g.resource.id, name)
    except of_kind.unknown as exc:
        abort(404, str(exc))
    flash(f"The {of_kind.title} {name} was deleted.")
    return redirect(url_for("dashboard.domains"), code=303)
