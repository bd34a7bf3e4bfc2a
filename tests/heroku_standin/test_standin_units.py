"""Small pure parts of the stand-in: SSO signing, logplex framing, configuration from a manifest."""

from __future__ import annotations

import pytest

from tests.heroku_standin.__main__ import build_config, parse_args
from tests.heroku_standin.config import StandinConfig
from tests.heroku_standin.logplex import FrameError, parse_frames
from tests.heroku_standin.sso import sso_fields


def test_sso_resource_token_matches_the_spec_test_vector() -> None:
    fields = sso_fields("123", "123", "2f97bfa52ca102f8874716e2eb1d3b4920ad0be4", 1267597772, "u", "e@x")
    assert fields["resource_token"] == "bb466eb1d6bc345d11072c3cd25c311f21be130d"
    assert fields["token"] == fields["resource_token"]
    assert len(fields["user_scoped_resource_token"]) == 64


def test_frames_are_split_by_octet_count_even_with_spaces_and_newlines_inside() -> None:
    first = "<190>1 2026-11-25T12:00:00+00:00 host app cloudmailin - - a b  c"
    second = "<14>1 - host app web.1 - - multi\nline"
    frames = parse_frames(f"{len(first)} {first}\n{len(second)} {second}".encode())
    assert [(f.priority, f.message) for f in frames] == [(190, "a b  c"), (14, "multi\nline")]


@pytest.mark.parametrize(
    "body",
    [b"abc", b"10 <190>1 x", b"0 ", b"20 not a syslog frame.", b"30 <190>1 ts host app proc msg [x"],
)
def test_malformed_logplex_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(FrameError):
        parse_frames(body)


def test_config_from_manifest_takes_names_and_test_urls_and_overrides_secrets() -> None:
    manifest = {
        "id": "cloudmailin",
        "api": {
            "config_vars_prefix": "CLOUDMAILIN",
            "config_vars": ["CLOUDMAILIN_FORWARD_ADDRESS", "CLOUDMAILIN_SMTP_URL"],
            "password": "placeholder",
            "sso_salt": "placeholder",
            "test": {
                "base_url": "http://localhost:5000/heroku/resources",
                "sso_url": "http://localhost:5000/sso/login",
            },
        },
    }
    config = StandinConfig.from_manifest(
        manifest, addon_password="real", sso_salt="salt", oauth_client_secret="c", api_key="k"
    )
    assert config.provider_base_url == "http://localhost:5000/heroku/resources"
    assert config.config_vars == ("CLOUDMAILIN_FORWARD_ADDRESS", "CLOUDMAILIN_SMTP_URL")
    assert (config.addon_password, config.sso_salt) == ("real", "salt")


def test_command_line_needs_provider_urls_without_a_manifest() -> None:
    secrets = ["--addon-password", "p", "--sso-salt", "s", "--client-secret", "c", "--api-key", "k"]
    with pytest.raises(SystemExit):
        build_config(parse_args(secrets))
    config = build_config(
        parse_args(
            [
                *secrets,
                "--provider-url",
                "http://127.0.0.1:1/r",
                "--sso-url",
                "http://127.0.0.1:1/s",
                "--app",
                "x",
            ]
        )
    )
    assert (config.provider_base_url, config.apps) == ("http://127.0.0.1:1/r", ("x",))
