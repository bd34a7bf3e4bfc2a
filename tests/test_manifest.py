"""addon-manifest.json follows the rules Heroku checks (spec/heroku.md) and holds no real secret."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from tests.conftest import REPO_ROOT

MANIFEST = json.loads((REPO_ROOT / "addon-manifest.json").read_text())
API = MANIFEST["api"]


def test_the_id_is_the_basic_auth_user_and_there_is_no_username_field():
    assert MANIFEST["id"] == "cloudmailin"
    assert "username" not in API


def test_config_vars_are_well_formed_and_carry_the_prefix():
    assert API["config_vars_prefix"] == "CLOUDMAILIN"
    assert API["config_vars"] == ["CLOUDMAILIN_FORWARD_ADDRESS", "CLOUDMAILIN_SMTP_URL"]
    for name in API["config_vars"]:
        assert re.fullmatch(r"[A-Z][0-9A-Z_]+", name) and name.startswith("CLOUDMAILIN_")


def test_regions_version_and_log_input():
    assert "us" in API["regions"] or "*" in API["regions"]
    assert API["version"] == "3"
    assert "log_input" in API["requires"]


def test_production_urls_are_https_and_test_urls_reach_this_app():
    for url in API["production"].values():
        assert urlsplit(url).scheme == "https"
    assert urlsplit(API["production"]["base_url"]).path == "/heroku/resources"
    assert urlsplit(API["production"]["sso_url"]).path == "/sso/login"
    assert API["test"] == {
        "base_url": "http://localhost:5000/heroku/resources",
        "sso_url": "http://localhost:5000/sso/login",
    }


def test_the_secrets_are_placeholders():
    for field in ("password", "sso_salt"):
        assert API[field].startswith("REPLACE_WITH"), field
