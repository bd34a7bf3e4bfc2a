"""The exact edges of the SSO time window (spec/heroku.md: a login is good for five minutes).

`verify_login` takes `now`, so each boundary is tested to the second on both sides.
"""

from __future__ import annotations

import pytest

from provider.services.sso import SsoRefused, verify_login

from .sso_fields import fields

SALT = "2f97bfa52ca102f8874716e2eb1d3b4920ad0be4"
RESOURCE = "01234567-89ab-cdef-0123-456789abcdef"
SIGNED_AT = 1_767_225_600


def _verify_at(now: int) -> str:
    return verify_login(fields(RESOURCE, SALT, timestamp=SIGNED_AT), SALT, now=now).resource_id


def test_a_login_exactly_five_minutes_old_is_accepted() -> None:
    assert _verify_at(SIGNED_AT + 300) == RESOURCE


def test_a_login_five_minutes_and_a_second_old_is_refused() -> None:
    with pytest.raises(SsoRefused, match="expired"):
        _verify_at(SIGNED_AT + 301)


def test_a_login_dated_a_minute_ahead_is_accepted() -> None:
    assert _verify_at(SIGNED_AT - 60) == RESOURCE


def test_a_login_dated_a_minute_and_a_second_ahead_is_refused() -> None:
    with pytest.raises(SsoRefused, match="future"):
        _verify_at(SIGNED_AT - 61)
