"""The Settings page in a real browser (Chromium through Playwright, signed in through the Heroku
stand-in): change the target and format, see a refusal beside its field, send a test message and
read the target's answer (htmx swaps it in), reveal the signing secret. Screenshots at laptop and
phone width, axe finds nothing serious, the console stays clean (CSP included)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.crypto import SecretBox
from provider.models import Address
from provider.settings import Settings
from tests.heroku_standin import RunningStandin

from ..smtp_edge.conftest import Target
from .browsing import provisioned, serious_violations, shoot, sign_in_through_heroku

pytestmark = pytest.mark.e2e


def test_a_user_changes_the_target_and_format_sends_a_test_message_and_reveals_the_secret(
    browser: Browser, heroku: RunningStandin, site: str, db_session: Session, settings: Settings,
    target: Target,
) -> None:
    addon_id, _, forward = provisioned(heroku, db_session, settings, target.url("/status/201"))
    address = db_session.scalars(select(Address).where(Address.resource_id == addon_id)).one()
    secret = SecretBox(settings.encryption_key).decrypt(address.signing_secret_enc)

    signed = sign_in_through_heroku(browser, heroku, site, addon_id)
    page, errors = signed.page, signed.errors
    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Forward address"))).to_contain_text(forward)
    shoot(page, "settings")
    assert serious_violations(page) == []

    target_field = page.get_by_label("Target URL")
    target_field.fill("ftp://app.example/mail")
    page.get_by_role("button", name="Save target and format").click()
    expect(target_field).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#delivery-{address.id}-target-error")).to_have_text(
        "The target must be an absolute http:// or https:// URL.")
    shoot(page, "settings-refused")
    assert serious_violations(page) == []

    page.get_by_label("Target URL").fill(target.url("/status/202"))
    page.get_by_label("Format").select_option("multipart")
    page.get_by_role("button", name="Save target and format").click()
    expect(page.get_by_role("status")).to_contain_text("Saved the delivery settings")
    expect(page.get_by_label("Format")).to_have_value("multipart")

    page.get_by_role("button", name="Send a test message").click()
    result = page.locator(f"#test-result-{address.id}")
    expect(result).to_contain_text("HTTP 202")
    expect(result).to_contain_text("250 2.0.0 Message accepted by the target (HTTP 202)")
    [request] = target.posts_to("/status/202")
    assert request.header("content-type").startswith("multipart/form-data")
    assert request.form()["envelope[to]"] == forward.encode()

    page.get_by_role("button", name="Reveal").click()
    expect(page.locator(f"#secret-value-{address.id} .secret")).to_have_text(secret)
    shoot(page, "settings-tested")
    assert serious_violations(page) == []
    # Nothing refused by the CSP, no script error; Chromium reports the refused form's 422 (the page
    # answers the refusal with it on purpose) as a failed load, which is not one.
    assert [error for error in errors if "status of 422" not in error] == []
    signed.context.close()
