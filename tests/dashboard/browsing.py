"""The dashboard in a real browser, shared by the browser tests: Playwright for Python driving
Debian's Chromium (installed by `bin/fetch-chromium`), the web app on a real socket, the sign-in
through the Heroku stand-in's SSO launch page. Screenshots of every page at laptop and phone width
are kept under `.data/screenshots/`; axe-core (pinned in provider/static/package.json) checks
accessibility. The fixtures are registered by tests/dashboard/conftest.py."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider import create_app
from provider.models import Domain, InboundMessage, Resource
from provider.models.base import utcnow
from provider.models.domain import SENDING
from provider.models.resource import PROVISIONED
from provider.services.addresses import forward_address
from provider.services.credentials import issue_credential
from provider.settings import Settings
from tests.domain_rows import create_address
from tests.heroku_side import seed_addon
from tests.heroku_standin import RunningStandin, StandinConfig, running_standin, serve_wsgi

from ..smtp_edge.conftest import SENDER, EdgeThread, Target, message, serving_target
from .apps import dispose

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".data" / "screenshots"
AXE = ROOT / "provider" / "static" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"laptop": (1280, 800), "phone": (375, 740)}


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: the suite runs as root on CI, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def site(settings: Settings) -> Iterator[str]:
    app = create_app(settings)
    with serve_wsgi(app) as url:
        yield url
    dispose(app)


@pytest.fixture
def heroku(site: str, settings: Settings) -> Iterator[RunningStandin]:
    config = StandinConfig(
        provider_base_url=f"{site}/heroku/resources", provider_sso_url=f"{site}/sso/login",
        addon_password=settings.addon_password, sso_salt=settings.sso_salt,
        oauth_client_secret=settings.oauth_client_secret, api_key="standin-user-api-key",
    )
    with running_standin(config) as running:
        yield running


@pytest.fixture
def target() -> Iterator[Target]:
    with serving_target() as state:
        yield state


def provisioned(
    running: RunningStandin, db_session: Session, settings: Settings, target_url: str
) -> tuple[str, Any, str]:
    """An add-on Heroku holds as provisioned and the resource behind it (its forward address and
    credential), with a sending domain."""
    seeded = seed_addon(running, app_name="shiny-app")
    with running.parts.store.lock:
        running.parts.store.addons[seeded.id].state = "provisioned"
    resource = Resource(id=seeded.id, plan="starter", state=PROVISIONED)
    db_session.add(resource)
    address = create_address(db_session, settings, resource, target_url)
    credential = issue_credential(db_session, settings, resource)
    db_session.flush()
    db_session.add(Domain(resource_id=resource.id, name="shop.example", kind=SENDING, verified_at=utcnow()))
    db_session.commit()
    return seeded.id, credential, forward_address(settings, address.local_id)


def send_through_the_edge(edge: EdgeThread, to: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", edge.mx_port, timeout=30) as smtp:
        smtp.sendmail(SENDER, [to], message(subject, to=to))


def wait_for_history(db_session: Session, resource_id: str, subject: str) -> None:
    """The edge records after its reply (batched); wait a bounded while for the row."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        db_session.expire_all()
        if db_session.scalar(select(InboundMessage.id).where(
                InboundMessage.resource_id == resource_id, InboundMessage.subject == subject)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no history row for {subject!r}")


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, size in WIDTHS.items():
        page.set_viewport_size({"width": size[0], "height": size[1]})
        path = SCREENSHOTS / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        # Nothing is wider than the screen: a phone reader never scrolls sideways.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {width} is {overflow}px wider than the screen"


def serious_violations(page: Page) -> list[str]:
    # Not `add_script_tag`: the page's CSP refuses inline scripts (as it should); evaluate is outside it.
    page.evaluate(AXE.read_text())
    result = page.evaluate("axe.run().then(r => r.violations)")
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result
            if v["impact"] in ("serious", "critical")]


@dataclass
class SignedIn:
    """A browser page signed in through the stand-in's SSO launch page, with the console errors
    it has logged (a CSP refusal or a script error shows there)."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)


def sign_in_through_heroku(browser: Browser, heroku: RunningStandin, site: str, addon_id: str,
                           timezone_id: str = "Asia/Tokyo") -> SignedIn:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id=timezone_id,
                                  accept_downloads=True)
    page = context.new_page()
    signed = SignedIn(context, page)
    page.on("console", lambda note: signed.errors.append(note.text) if note.type == "error" else None)
    page.goto(f"{heroku.url}/sso/addons/{addon_id}")
    page.wait_for_url(f"{site}/dashboard")
    return signed
