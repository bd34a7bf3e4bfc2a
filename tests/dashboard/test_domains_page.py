"""The dashboard's Domains page: custom inbound and sending domains added, verified against a real
DNS server on 127.0.0.1 and deleted through the services the APIs use; their refusals beside the
field, CSRF on every form, another add-on's domains out of reach, an app log line per change."""

from __future__ import annotations

import html
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.crypto import box_for
from provider.models import AppLogLine, Domain, Resource
from provider.models.domain import INBOUND, SENDING
from provider.services import inbound_domains, sending_domains
from provider.settings import Settings
from tests.dnsserver import DnsServer

from .conftest import Shop, csrf_token
from .domain_zone import settings_on_zone, zone_server  # noqa: F401  (fixtures)
from .test_security import INLINE_HANDLER, INLINE_SCRIPT

KINDS = {INBOUND: inbound_domains, SENDING: sending_domains}


@pytest.fixture
def shop(shop: Shop, db_session: Session, settings: Settings) -> Shop:
    """The shop with a log drain, so its app log lines are stored."""
    resource = db_session.get(Resource, shop.account.resource_id)
    assert resource is not None
    resource.log_input_url_enc = box_for(settings).encrypt("https://t:t@127.0.0.1:9/logs")
    db_session.commit()
    return shop


def text_of(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)
    return html.unescape(response.get_data(as_text=True))


def token(client: FlaskClient) -> str:
    return csrf_token(client.get("/dashboard/domains").get_data(as_text=True))


def add(client: FlaskClient, kind: str, name: str, regex: str = "", **extra: str):
    data = {"name": name, "csrf_token": token(client), **extra}
    if kind == INBOUND:
        data["regex"] = regex
    return client.post(f"/dashboard/domains/{kind}", data=data)


def added(client: FlaskClient, kind: str, name: str, regex: str = "") -> str:
    response = add(client, kind, name, regex)
    assert response.status_code == 303, response.get_data(as_text=True)
    return text_of(client, response.headers["Location"])


def verify(client: FlaskClient, kind: str, name: str) -> str:
    response = client.post(f"/dashboard/domains/{kind}/{name}/verify", data={"csrf_token": token(client)})
    assert response.status_code == 200, response.get_data(as_text=True)
    return html.unescape(response.get_data(as_text=True))


def checks_of(page: str) -> dict[str, str]:
    """Each record's check on a verify page, by purpose."""
    rows = re.findall(r'<tr data-purpose="(\w+)">.*?<strong class="check \w+">([\w ]+)</strong>', page, re.S)
    return dict(rows)


def stored(db_session: Session, settings: Settings, shop: Shop, kind: str, name: str) -> Domain:
    db_session.expire_all()
    return KINDS[kind].resource_domain(db_session, settings, shop.account.resource_id, name)


def publish(zone: DnsServer, settings: Settings, domain: Domain) -> None:
    records: dict[str, dict[str, list[str]]] = {}
    for record in KINDS[domain.kind].dns_records(settings, domain):
        records.setdefault(record.name, {}).setdefault(record.type, []).append(record.value)
    zone.set_records(records)


def log_lines(db_session: Session, shop: Shop) -> list[str]:
    db_session.expire_all()
    mine = select(AppLogLine.message).where(AppLogLine.resource_id == shop.account.resource_id)
    return list(db_session.scalars(mine.order_by(AppLogLine.id)))


def field_error(page: str, field_id: str) -> str:
    """The error shown beside a field; the field is marked invalid and described by it."""
    field = re.search(rf'<input[^>]*id="{field_id}"[^>]*>', page)
    assert field is not None and 'aria-invalid="true"' in field.group(0), field_id
    assert f'aria-describedby="{field_id}-error' in field.group(0)
    error = re.search(rf'<small id="{field_id}-error"[^>]*>(.*?)</small>', page, re.S)
    assert error is not None, f"no error beside {field_id}"
    return error.group(1)


def test_the_page_lists_both_kinds_with_their_state_and_the_plan_s_limit(signed_in: FlaskClient) -> None:
    page = text_of(signed_in, "/dashboard/domains")
    assert 'aria-current="page">Domains</a>' in page
    assert "No custom inbound domain yet." in page
    assert "The starter plan allows 1 custom inbound domain; this add-on has 0." in page
    sending = re.search(r'<article id="sending-shop.example".*?</article>', page, re.S)
    assert sending is not None and "verified" in sending.group(0) and "<time datetime=" in sending.group(0)


def test_an_inbound_domain_is_added_with_its_pattern_and_records_to_copy_and_it_is_logged(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop
) -> None:
    response = add(signed_in, INBOUND, "Mail.Shop.Example.", "orders|support")
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard/domains/inbound/mail.shop.example"
    page = text_of(signed_in, response.headers["Location"])
    assert "mail.shop.example was added. Publish its DNS records, then verify it." in page
    domain = stored(db_session, settings, shop, INBOUND, "mail.shop.example")
    assert domain.local_part_regex == "orders|support" and domain.verified_at is None
    assert "<strong class=\"domain-state pending\">pending</strong>" in page
    for record in inbound_domains.dns_records(settings, domain):
        assert f'data-copy="{record.name}"' in page and f'data-copy="{record.value}"' in page
    assert f"10 {settings.inbound_mx_host}" in page
    assert f"cloudmailin-verification={domain.verification_token}" in page
    listed = text_of(signed_in, "/dashboard/domains")
    assert '<article id="inbound-mail.shop.example"' in listed and "<code>orders|support</code>" in listed
    assert "this add-on has 1." in listed
    assert log_lines(db_session, shop) == [
        "cloudmailin: inbound domain mail.shop.example added for local parts orders|support"]


def test_an_inbound_domain_without_a_pattern_is_a_catch_all_and_a_wildcard_has_its_own_page(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop
) -> None:
    page = added(signed_in, INBOUND, "*.shop.example")
    assert stored(db_session, settings, shop, INBOUND, "*.shop.example").local_part_regex is None
    assert "every address (catch-all)" in page
    assert 'data-copy="_cloudmailin.shop.example"' in page  # a wildcard's token sits at its parent
    own_page = text_of(signed_in, "/dashboard/domains/inbound/*.shop.example")
    assert own_page.count("<h1>*.shop.example</h1>") == 1


def test_verify_now_shows_each_inbound_record_s_check_and_verifies_once_both_are_published(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop, zone: DnsServer
) -> None:
    added(signed_in, INBOUND, "mail.shop.example")
    page = verify(signed_in, INBOUND, "mail.shop.example")
    assert checks_of(page) == {"mx": "missing", "verification": "missing"}
    assert "mail.shop.example does not exist in DNS; publish MX 10 " in page
    assert "is not verified yet" in page
    assert stored(db_session, settings, shop, INBOUND, "mail.shop.example").verified_at is None

    zone.set_records({"mail.shop.example": {"MX": ["10 mx.other.example."]}})
    page = verify(signed_in, INBOUND, "mail.shop.example")
    assert checks_of(page)["mx"] == "wrong"
    assert "The MX records of mail.shop.example are 10 mx.other.example" in page  # what was found

    publish(zone, settings, stored(db_session, settings, shop, INBOUND, "mail.shop.example"))
    page = verify(signed_in, INBOUND, "mail.shop.example")
    assert checks_of(page) == {"mx": "ok", "verification": "ok"}
    assert "mail.shop.example is verified." in page
    assert '<strong class="domain-state verified">verified</strong>' in page
    assert stored(db_session, settings, shop, INBOUND, "mail.shop.example").verified_at is not None
    assert log_lines(db_session, shop)[-1] == "cloudmailin: inbound domain mail.shop.example verified"


def test_a_sending_domain_is_added_with_its_dkim_and_spf_records_and_verified_once_published(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop, zone: DnsServer
) -> None:
    page = added(signed_in, SENDING, "news.shop.example")
    domain = stored(db_session, settings, shop, SENDING, "news.shop.example")
    records = {record.purpose: record for record in sending_domains.dns_records(settings, domain)}
    assert records["dkim"].name == "cloudmailin._domainkey.news.shop.example"
    for record in records.values():
        assert f'data-copy="{record.value}"' in page
    assert "(optional)" in page  # SPF is advice
    assert log_lines(db_session, shop) == ["cloudmailin: sending domain news.shop.example added"]

    page = verify(signed_in, SENDING, "news.shop.example")
    assert checks_of(page) == {"dkim": "missing", "verification": "missing", "spf": "missing"}
    dkim = records["dkim"]
    assert f"No TXT record at {dkim.name}; publish {dkim.value}" in page

    publish(zone, settings, domain)
    page = verify(signed_in, SENDING, "news.shop.example")
    assert checks_of(page) == {"dkim": "ok", "verification": "ok", "spf": "ok"}
    assert "news.shop.example is verified." in page
    assert log_lines(db_session, shop)[-1] == "cloudmailin: sending domain news.shop.example verified"


def test_a_failed_look_up_is_shown_as_such(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop, zone: DnsServer
) -> None:
    added(signed_in, SENDING, "news.shop.example")
    zone.servfail.add("cloudmailin._domainkey.news.shop.example")
    page = verify(signed_in, SENDING, "news.shop.example")
    assert checks_of(page)["dkim"] == "lookup failed" and "try again" in page


@pytest.mark.parametrize("kind", [INBOUND, SENDING])
def test_deleting_asks_first_then_removes_the_domain_and_logs_it(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop, kind: str
) -> None:
    added(signed_in, kind, "mail.shop.example")
    confirm = text_of(signed_in, f"/dashboard/domains/{kind}/mail.shop.example/delete")
    assert "<h1>Delete mail.shop.example?</h1>" in confirm
    assert f'action="/dashboard/domains/{kind}/mail.shop.example/delete"' in confirm
    assert stored(db_session, settings, shop, kind, "mail.shop.example")  # asking deleted nothing
    response = signed_in.post(f"/dashboard/domains/{kind}/mail.shop.example/delete",
                              data={"csrf_token": csrf_token(confirm)})
    assert (response.status_code, response.headers["Location"]) == (303, "/dashboard/domains")
    assert "mail.shop.example was deleted." in text_of(signed_in, "/dashboard/domains")
    with pytest.raises(LookupError):
        stored(db_session, settings, shop, kind, "mail.shop.example")
    assert log_lines(db_session, shop)[-1] == f"cloudmailin: {kind} domain mail.shop.example deleted"


@pytest.mark.parametrize(("kind", "name", "regex", "field", "status", "text"), [
    (SENDING, "localhost", "", "sending-name", 422,
     "'localhost' is not a domain name with a top-level domain, such as example.com."),
    (SENDING, "shop.example", "", "sending-name", 409,
     "shop.example is already a sending domain of this add-on."),
    (SENDING, "", "", "sending-name", 422, "name must be a domain name"),
    (INBOUND, "mx.INBOUND_DOMAIN", "", "inbound-name", 422, "is this service's own domain"),
    (INBOUND, "mail.shop.example", "(a)\\1", "inbound-regex", 422,
     "is not a pattern this service runs (invalid escape sequence: \\1)"),
])
def test_a_refused_add_shows_the_service_s_reason_beside_its_field_and_keeps_what_was_typed(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop,
    kind: str, name: str, regex: str, field: str, status: int, text: str,
) -> None:
    name = name.replace("INBOUND_DOMAIN", settings.inbound_domain)
    response = add(signed_in, kind, name, regex)
    assert response.status_code == status
    page = html.unescape(response.get_data(as_text=True))
    assert text in field_error(page, field)
    if name:
        assert f'value="{name}"' in page
    held = select(Domain.name).where(Domain.resource_id == shop.account.resource_id)
    assert list(db_session.scalars(held)) == ["shop.example"]  # the fixture's sending domain only


def test_the_plan_s_limit_of_inbound_domains_is_shown_beside_the_name(signed_in: FlaskClient) -> None:
    added(signed_in, INBOUND, "mail.shop.example")
    response = add(signed_in, INBOUND, "more.shop.example")
    assert response.status_code == 403
    assert field_error(response.get_data(as_text=True), "inbound-name") == (
        "The starter plan allows 1 custom inbound domain and this add-on has 1; delete one or upgrade.")


@pytest.mark.parametrize("token_sent", [None, "forged-token"])
def test_every_domain_form_without_the_session_s_csrf_token_is_refused_and_changes_nothing(
    signed_in: FlaskClient, db_session: Session, settings: Settings, shop: Shop, token_sent: str | None
) -> None:
    added(signed_in, INBOUND, "mail.shop.example")
    data = {"csrf_token": token_sent} if token_sent else {}
    for path, fields in (("/dashboard/domains/inbound", {"name": "more.shop.example"}),
                         ("/dashboard/domains/sending", {"name": "news.shop.example"}),
                         ("/dashboard/domains/inbound/mail.shop.example/verify", {}),
                         ("/dashboard/domains/inbound/mail.shop.example/delete", {})):
        response = signed_in.post(path, data={**fields, **data})
        assert response.status_code == 400, path
        assert "CSRF" in response.get_data(as_text=True)
    db_session.expire_all()
    held = select(Domain.name).where(Domain.resource_id == shop.account.resource_id)
    assert sorted(db_session.scalars(held)) == ["mail.shop.example", "shop.example"]


def test_another_add_on_s_domains_are_not_found_and_not_listed(
    signed_in: FlaskClient, db_session: Session, settings: Settings, other_shop: Shop
) -> None:
    other = other_shop.account.resource_id
    inbound_domains.add_domain(db_session, settings, other, "other.example")
    sending_domains.add_domain(db_session, settings, other, "send.other.example")
    listed = text_of(signed_in, "/dashboard/domains")
    assert "other.example" not in listed
    form = {"csrf_token": token(signed_in)}
    foreign = ((INBOUND, "other.example"), (SENDING, "send.other.example"), (SENDING, "nowhere.example"))
    for kind, name in foreign:
        assert signed_in.get(f"/dashboard/domains/{kind}/{name}").status_code == 404
        assert signed_in.get(f"/dashboard/domains/{kind}/{name}/delete").status_code == 404
        for action in ("verify", "delete"):
            response = signed_in.post(f"/dashboard/domains/{kind}/{name}/{action}", data=form)
            assert response.status_code == 404, (kind, name, action)
            assert response.mimetype == "text/html"
    assert signed_in.get("/dashboard/domains/other/shop.example").status_code == 404
    db_session.expire_all()
    kept = select(Domain.name).where(Domain.resource_id == other)
    assert sorted(db_session.scalars(kept)) == ["other.example", "send.other.example"]


def test_without_an_sso_session_the_page_and_its_forms_are_refused(client: FlaskClient, shop: Shop) -> None:
    assert client.get("/dashboard/domains").status_code == 403
    assert client.post("/dashboard/domains/sending", data={"name": "news.shop.example"}).status_code == 403


def test_a_sending_domain_row_without_a_key_is_listed_and_verifying_it_looks_nothing_up(
    signed_in: FlaskClient, zone: DnsServer
) -> None:
    # The fixture's shop.example is written straight to the table, without a DKIM key.
    page = text_of(signed_in, "/dashboard/domains/sending/shop.example")
    assert "has no DKIM key" in page and "Verify now" not in page
    response = signed_in.post("/dashboard/domains/sending/shop.example/verify",
                              data={"csrf_token": token(signed_in)})
    assert response.status_code == 200 and 'id="checks"' not in response.get_data(as_text=True)
    assert zone.queries == []


def test_every_domains_page_has_the_csp_and_no_inline_script_or_style(
    signed_in: FlaskClient,
) -> None:
    added(signed_in, INBOUND, "mail.shop.example")
    pages = [signed_in.get(path) for path in (
        "/dashboard/domains", "/dashboard/domains/inbound/mail.shop.example",
        "/dashboard/domains/inbound/mail.shop.example/delete")]
    pages.append(signed_in.post("/dashboard/domains/inbound/mail.shop.example/verify",
                                data={"csrf_token": token(signed_in)}))
    pages.append(add(signed_in, SENDING, "localhost"))
    for response in pages:
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        page = response.get_data(as_text=True)
        assert not INLINE_SCRIPT.search(page) and not INLINE_HANDLER.search(page)
        assert " style=" not in page
