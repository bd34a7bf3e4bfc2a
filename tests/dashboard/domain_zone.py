"""Fixtures of the Domains page's tests: a DNS server on 127.0.0.1 the web app resolves through,
so "Verify now" reads what a test publishes. A test module imports both functions; its tests then
ask for `zone` and `settings` by those names."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from provider.settings import Settings
from tests.dnsserver import DnsServer


@pytest.fixture(name="zone")
def zone_server() -> Iterator[DnsServer]:
    with DnsServer({}) as server:
        yield server


@pytest.fixture(name="settings")
def settings_on_zone(settings: Settings, zone: DnsServer) -> Settings:
    """The suite's settings with the domains' look-ups sent to `zone` (`site` and `app` use them)."""
    return dataclasses.replace(settings, dns_nameservers=zone.nameservers)
