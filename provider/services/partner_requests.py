"""Reading Heroku's partner API bodies into typed requests, with a readable message for every refusal.

Heroku's add-ons media type is not `application/json`, so bodies are parsed whatever their
Content-Type. Unknown fields are ignored (Heroku adds fields over time); known fields are checked
for type and size, so a hostile or broken body is refused before anything touches the database.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..models.address import DEFAULT_FORMAT
from ..plans import Plan, UnknownPlan, plan_named
from .addresses import format_list, validate_format, validate_target

# Heroku's region names and the short ones from the manifest, mapped to what we store.
REGIONS = {
    "us": "us",
    "eu": "eu",
    "amazon-web-services::us-east-1": "us",
    "amazon-web-services::eu-west-1": "eu",
}
DEFAULT_REGION = "us"
MAX_TEXT = 255
MAX_URL = 2048
MAX_OPTIONS = 32
MAX_OPTION_NAME = 64

OptionValue = str | bool | int | float


class InvalidRequest(ValueError):
    """The body is well-formed JSON but asks for something we cannot do (answered 422)."""


class MalformedBody(InvalidRequest):
    """The body is not a JSON object at all (answered 400)."""


@dataclass(frozen=True)
class OAuthGrant:
    code: str
    expires_at: datetime | None


@dataclass(frozen=True)
class ProvisionRequest:
    uuid: str
    plan: Plan
    region: str = DEFAULT_REGION
    name: str | None = None
    callback_url: str | None = None
    heroku_id: str | None = None
    log_input_url: str | None = None
    oauth_grant: OAuthGrant | None = None
    options: dict[str, OptionValue] = field(default_factory=dict)
    target: str | None = None
    format: str = DEFAULT_FORMAT


ADDRESS_OPTIONS = ("target", "format")
"""Options that are settings of the forward address, kept there rather than among the options."""


def json_object(data: bytes) -> dict[str, Any]:
    if not data.strip():
        raise MalformedBody("The request body is empty; a JSON object was expected.")
    try:
        body = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise MalformedBody("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise MalformedBody("The request body must be a JSON object.")
    return body


def _refuse_constant(name: str) -> Any:
    # Python's parser accepts NaN and Infinity, which are not JSON and which no column can store.
    raise ValueError(f"{name} is not a JSON value")


def storable(name: str, value: str) -> str:
    """`value` if PostgreSQL can store it as text; JSON's escapes can carry a NUL or half of a
    surrogate pair, which the database refuses (a 500 if it got that far)."""
    if "\x00" in value:
        raise InvalidRequest(f"{name} must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{name} is not valid Unicode (a lone surrogate escape).") from None
    return value


def resource_id(value: object) -> str:
    """The canonical (lower-case, hyphenated) form of a UUID, or `InvalidRequest`."""
    if value is None:
        raise InvalidRequest("uuid is required.")
    if isinstance(value, str) and len(value) == 36:
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            pass
        else:
            if str(parsed) == value.lower():
                return str(parsed)
    raise InvalidRequest(
        f"uuid must be a UUID such as 01234567-89ab-cdef-0123-456789abcdef, got {value!r:.60}."
    )


def plan_from(body: dict[str, Any]) -> Plan:
    name = body.get("plan")
    if name is None:
        raise InvalidRequest("plan is required.")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("plan must be a plan name such as \"starter\".")
    if len(name) > MAX_TEXT:
        raise UnknownPlan(f"Unknown plan {name[:40]!r}...")
    return plan_named(name)


def region_from(value: object) -> str:
    if value is None:
        return DEFAULT_REGION
    if isinstance(value, str) and value.strip().lower() in REGIONS:
        return REGIONS[value.strip().lower()]
    accepted = ", ".join(REGIONS)
    raise InvalidRequest(f"Region {value!r:.60} is not available; accepted regions: {accepted}.")


def _text(body: dict[str, Any], name: str, limit: int = MAX_TEXT) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string.")
    if len(value) > limit:
        raise InvalidRequest(f"{name} is longer than {limit} characters.")
    return storable(name, value)


def _grant(value: object) -> OAuthGrant | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("oauth_grant must be an object with a code.")
    code = _text(value, "code", MAX_URL)
    if not code:
        raise InvalidRequest("oauth_grant.code must be a non-empty string.")
    raw_expiry = _text(value, "expires_at", 64)
    expires_at = None
    if raw_expiry:
        try:
            expires_at = datetime.fromisoformat(raw_expiry)
        except ValueError:
            raise InvalidRequest("oauth_grant.expires_at must be an ISO 8601 time.") from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
    return OAuthGrant(code, expires_at)


def _options(value: object) -> dict[str, OptionValue]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("options must be an object of option names and values.")
    if len(value) > MAX_OPTIONS:
        raise InvalidRequest(f"At most {MAX_OPTIONS} options are accepted.")
    options: dict[str, OptionValue] = {}
    for name, option in value.items():
        if len(name) > MAX_OPTION_NAME:
            raise InvalidRequest(f"Option name {name[:40]!r}... is too long.")
        storable("An option name", name)
        if isinstance(option, str):
            if len(option) > MAX_URL:
                raise InvalidRequest(f"Option {name!r} is longer than {MAX_URL} characters.")
            storable(f"Option {name!r}", option)
        elif not isinstance(option, bool | int | float):
            raise InvalidRequest(f"Option {name!r} must be a string or a flag.")
        options[name] = option
    return options


def _target(options: dict[str, OptionValue]) -> str | None:
    if "target" not in options:
        return None
    value = options["target"]
    if isinstance(value, bool) or value == "true":
        raise InvalidRequest("--target needs a URL: -- --target=https://example.com/incoming_mails")
    return validate_target(value)


def _format(options: dict[str, OptionValue]) -> str:
    if "format" not in options:
        return DEFAULT_FORMAT
    value = options["format"]
    if isinstance(value, bool) or value == "true":
        raise InvalidRequest(f"--format needs a value: -- --format=multipart ({format_list()}).")
    return validate_format(value)


def provision_request(body: dict[str, Any]) -> ProvisionRequest:
    """Check a provision body; raises InvalidRequest, UnknownPlan or InvalidAddressSetting (all
    ValueErrors)."""
    options = _options(body.get("options"))
    return ProvisionRequest(
        uuid=resource_id(body.get("uuid")),
        plan=plan_from(body),
        region=region_from(body.get("region")),
        name=_text(body, "name"),
        callback_url=_text(body, "callback_url", MAX_URL),
        heroku_id=_text(body, "heroku_id"),
        log_input_url=_text(body, "log_input_url", MAX_URL),
        oauth_grant=_grant(body.get("oauth_grant")),
        options=options,
        target=_target(options),
        format=_format(options),
    )
