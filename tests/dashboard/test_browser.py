"""The dashboard in a real browser: Playwright for Python driving Debian's Chromium (installed by
`bin/fetch-chromium`), the web app on a real socket, the sign-in through the Heroku stand-in's
SSO launch page. Screenshots of every page at laptop and phone width are kept under
`.data/screenshots/`; axe-core (pinned in provider/static/package.json) checks accessibility."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from provider.settings import Settings
from tests.heroku_standin import RunningStandin

from ..smtp_edge.conftest import SENDER, EdgeThread, Target
from .browsing import (
    provisioned,
    send_through_the_edge,
    serious_violations,
    shoot,
    sign_in_through_heroku,
    wait_for_history,
)

pytestmark = pytest.mark.e2e


def test_a_user_signs_in_through_heroku_and_finds_what_was_received_and_sent(
    browser: Browser, heroku: RunningStandin, site: str, db_session: Session, settings: Settings,
    edge: EdgeThread, target: Target,
) -> None:
    addon_id, credential, address = provisioned(heroku, db_session, settings, target.url("/status/201"))
    send_through_the_edge(edge, address, "Order 1001 received")
    wait_for_history(db_session, addon_id, "Order 1001 received")
    sent = requests.post(
        f"{site}/api/v0.1/{credential.username}/messages", timeout=30,
        headers={"Authorization": f"Bearer {credential.key}"},
        json={"from": "Shop <orders@shop.example>", "to": "bo@example.org", "subject": "Your order shipped",
              "plain": "On its way."},
    )
    assert sent.status_code == 202, sent.text

    signed = sign_in_through_heroku(browser, heroku, site, addon_id)
    page, errors = signed.page, signed.errors
    expect(page.locator("#heroku-header")).to_contain_text("shiny-app")
    expect(page.locator("#chart canvas")).to_have_count(1)  # uPlot drew the chart
    shoot(page, "overview")
    assert serious_violations(page) == []

    page.get_by_role("link", name="Inbound", exact=True).click()
    row = page.get_by_role("row").filter(has_text="Order 1001 received")
    expect(row).to_have_count(1)
    # Times are shown in the viewer's zone (Tokyo is UTC+9, no daylight saving).
    stamp = row.locator("time")
    assert re.search(r"\d", stamp.inner_text()) and stamp.inner_text() != stamp.get_attribute("datetime")
    shoot(page, "inbound")
    assert serious_violations(page) == []
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Order 1001 received")).to_be_visible()
    expect(page.locator("#target")).to_contain_text("201")
    expect(page.locator("#envelope")).to_contain_text(SENDER)
    expect(page.locator("#checks")).to_contain_text("pass")  # SPF of sender.example allows 127.0.0.1
    shoot(page, "inbound-message")
    assert serious_violations(page) == []

    page.get_by_role("link", name="Outbound", exact=True).click()
    sent_row = page.get_by_role("row").filter(has_text="Your order shipped")
    expect(sent_row).to_contain_text("bo@example.org")
    shoot(page, "outbound")
    assert serious_violations(page) == []
    sent_row.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("bo@example.org"))).to_be_visible()
    shoot(page, "outbound-message")
    assert serious_violations(page) == []

    page.get_by_role("link", name="Suppressions").click()
    expect(page.locator("#empty-state")).to_be_visible()
    shoot(page, "suppressions")
    assert serious_violations(page) == []
    assert errors == []  # nothing refused by the CSP, no script error
    signed.context.close()
