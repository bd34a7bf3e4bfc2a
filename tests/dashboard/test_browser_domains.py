"""The Domains page in a real browser (tests/dashboard/browsing.py): a user signed in through the
Heroku stand-in adds a custom inbound domain and a sending domain, reads the records to publish
from the page, verifies them against the test DNS server the web app resolves through, sees a
refusal beside its field, and deletes a domain through the confirmation step. Screenshots at
laptop and phone width, axe on every state, no console error."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from provider.settings import Settings
from tests.dnsserver import DnsServer
from tests.heroku_standin import RunningStandin

from .browsing import provisioned, serious_violations, shoot, sign_in_through_heroku
from .domain_zone import settings_on_zone, zone_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e


def records_on(page: Page) -> dict[str, dict[str, list[str]]]:
    """The records table as a person copies it: type, then the name's and the value's copy buttons."""
    zone: dict[str, dict[str, list[str]]] = {}
    for row in page.locator("table.records tbody tr").all():
        record_type = row.locator("td").first.inner_text().split()[0]
        buttons = row.locator("button[data-copy]").all()
        name, value = (button.get_attribute("data-copy") or "" for button in buttons)
        zone.setdefault(name, {}).setdefault(record_type, []).append(value)
    return zone


def checked(page: Page) -> None:
    assert serious_violations(page) == []


def test_a_user_adds_verifies_and_deletes_domains_from_the_dashboard(
    browser, heroku: RunningStandin, site: str, db_session: Session, settings: Settings, zone: DnsServer,
) -> None:
    addon_id, _credential, _address = provisioned(heroku, db_session, settings, "https://app.example/mail")
    signed = sign_in_through_heroku(browser, heroku, site, addon_id)
    page, errors = signed.page, signed.errors
    signed.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)

    page.get_by_role("link", name="Domains", exact=True).click()
    expect(page.get_by_role("heading", name="Domains", level=1)).to_be_visible()
    expect(page.locator("#inbound-empty")).to_be_visible()
    expect(page.locator("#sending-shop\\.example")).to_contain_text("verified")

    # A pattern RE2 refuses is shown beside its field, with what was typed kept.
    page.get_by_label("Domain", exact=True).first.fill("mail.shiny.example")
    page.get_by_label("Local-part pattern (optional)").fill("(?=orders)")
    page.get_by_role("button", name="Add inbound domain").click()
    expect(page.locator("#inbound-regex")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#inbound-regex-error")).to_contain_text("is not a pattern this service runs")
    expect(page.locator("#inbound-name")).to_have_value("mail.shiny.example")
    shoot(page, "domains-refused")
    checked(page)

    page.get_by_label("Local-part pattern (optional)").fill("orders|support")
    page.get_by_role("button", name="Add inbound domain").click()
    expect(page.get_by_role("heading", name="mail.shiny.example", level=1)).to_be_visible()
    expect(page.locator("#domain-state")).to_contain_text("pending")
    inbound_records = records_on(page)
    assert inbound_records["mail.shiny.example"] == {"MX": [f"10 {settings.inbound_mx_host}"]}
    assert list(inbound_records["_cloudmailin.mail.shiny.example"]) == ["TXT"]
    copy = page.locator("table.records button[data-copy]").first
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "mail.shiny.example"

    # Nothing published yet: each record's check says what is missing.
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("#checks")).to_contain_text("not verified yet")
    expect(page.locator("#checks tr[data-purpose=mx]")).to_contain_text("missing")
    expect(page.locator("#checks tr[data-purpose=verification]")).to_contain_text("missing")
    shoot(page, "domain-checks-missing")
    checked(page)

    page.get_by_role("link", name="Domains", exact=True).click()
    page.locator("#sending-name").fill("shiny.example")
    page.get_by_role("button", name="Add sending domain").click()
    expect(page.get_by_role("heading", name="shiny.example", level=1)).to_be_visible()
    sending_records = records_on(page)
    dkim = sending_records["cloudmailin._domainkey.shiny.example"]["TXT"]
    assert dkim[0].startswith("v=DKIM1; k=rsa; p=")
    shoot(page, "domain-sending")
    checked(page)

    # Publish what the pages showed; verify each.
    zone.set_records({**inbound_records, **sending_records})
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("#checks")).to_contain_text("shiny.example is verified.")
    for purpose in ("dkim", "verification", "spf"):
        expect(page.locator(f"#checks tr[data-purpose={purpose}]")).to_contain_text("ok")
    expect(page.locator("#domain-state")).to_contain_text("verified")

    page.get_by_role("link", name="Domains", exact=True).click()
    inbound = page.locator("article#inbound-mail\\.shiny\\.example")
    inbound.get_by_role("button", name="Verify now").click()
    expect(page.locator("#checks")).to_contain_text("mail.shiny.example is verified.")
    shoot(page, "domain-checks-ok")
    checked(page)

    page.get_by_role("link", name="Domains", exact=True).click()
    expect(page.locator("article#inbound-mail\\.shiny\\.example")).to_contain_text("verified")
    expect(page.locator("article#sending-shiny\\.example")).to_contain_text("verified")
    shoot(page, "domains")
    checked(page)

    # Deleting asks first.
    page.locator("article#sending-shiny\\.example").get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete shiny.example?")).to_be_visible()
    shoot(page, "domain-delete")
    checked(page)
    page.get_by_role("button", name="Delete shiny.example").click()
    expect(page.locator("p.notice")).to_contain_text("The sending domain shiny.example was deleted.")
    expect(page.locator("article#sending-shiny\\.example")).to_have_count(0)

    # Nothing refused by the CSP, no script error: Chromium's only console line is the refused
    # add's own page, answered 422 like the API's refusal.
    refused_page = "Failed to load resource: the server responded with a status of 422 (UNPROCESSABLE ENTITY)"
    assert errors == [refused_page]
    signed.context.close()
