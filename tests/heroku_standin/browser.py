"""What a browser does with the add-on's `web_url`: load the launch page, submit its form to the
provider's `sso_url`, follow the redirects. For tests of the SSO hand-off (no JavaScript needed:
the page's script only submits the form)."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

import requests


class LaunchForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.method = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action") or ""
            self.method = (values.get("method") or "get").upper()
        elif tag == "input" and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""


@dataclass(frozen=True)
class SsoVisit:
    form: LaunchForm
    landed: requests.Response
    cookies: dict[str, str]


def open_web_url(url: str) -> SsoVisit:
    browser = requests.Session()
    browser.trust_env = False
    page = browser.get(url, timeout=30)
    page.raise_for_status()
    form = LaunchForm()
    form.feed(page.text)
    if form.method != "POST" or not form.action:
        raise AssertionError(f"the launch page has no POST form: {page.text[:500]}")
    landed = browser.post(form.action, data=form.fields, timeout=30)
    return SsoVisit(form, landed, browser.cookies.get_dict())
