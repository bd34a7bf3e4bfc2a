"""Forward addresses: creating them, spelling them, and the rules for what they POST where.

A forward address is `<20 lowercase hex>@INBOUND_DOMAIN`. The local part is random (80 bits), so
an address cannot be guessed from another one and is never derived from the customer's app name.

The rules for an address's settings (target URL, format, sizes as strings) are here, free of any
framework, because every way in applies the same ones: provisioning options (`--target`,
`--format`), the addresses API and the dashboard (`address_settings` changes stored addresses).
Each refusal is an `InvalidAddressSetting` whose message is shown to the user as it is.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from ..crypto import box_for
from ..models.address import DEFAULT_FORMAT, FORMATS
from ..settings import Settings

MAX_TARGET_LENGTH = 2048
LOCAL_ID_HEX_CHARS = 20
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


class InvalidAddressSetting(ValueError):
    """A setting an address cannot take; the message says why and is shown to the user as is."""


class InvalidTarget(InvalidAddressSetting):
    """The target URL is not one we can POST to."""


class InvalidFormat(InvalidAddressSetting):
    """Not one of the delivery formats (`FORMATS`)."""


MASKED_PASSWORD = "•••"  # noqa: S105 (a mask, not a password)
"""What `display_target` shows instead of a password; never a password anyone means to set."""


def new_local_id() -> str:
    return secrets.token_hex(LOCAL_ID_HEX_CHARS // 2)


def new_signing_secret() -> str:
    return secrets.token_hex(32)


def forward_address(settings: Settings, local_id: str) -> str:
    """The address customers give out, from an address's `local_id`: the one spelling of it."""
    return f"{local_id}@{settings.inbound_domain}"



def new_address_values(
    settings: Settings, target_url: str | None, fmt: str = DEFAULT_FORMAT
) -> dict[str, Any]:
    """The columns of a new forward address, for an INSERT written without the ORM."""
    return {
        "local_id": new_local_id(),
        "target_url": target_url,
        "format": fmt,
        "signing_secret_enc": box_for(settings).encrypt(new_signing_secret()),
        "size_as_string": False,
    }


def format_list() -> str:
    return ", ".join(FORMATS[:-1]) + " or " + FORMATS[-1]


def validate_format(value: object) -> str:
    """The format's name (any case, surrounding spaces dropped), else `InvalidFormat`."""
    if isinstance(value, str) and value.strip().lower() in FORMATS:
        return value.strip().lower()
    raise InvalidFormat(f"Unknown format {value!r:.40}; choose {format_list()}.")


def validate_size_as_string(value: object) -> bool:
    """Whether attachment sizes go out as JSON strings (what the Go SDK reads); only a boolean,
    so a client's "false" string cannot silently turn the switch on."""
    if isinstance(value, bool):
        return value
    raise InvalidAddressSetting("size_as_string must be true or false.")


def validate_target(url: object) -> str:
    """Return the target URL if mail can be POSTed to it, else raise `InvalidTarget` saying why.

    Credentials in the URL are allowed (HTTP Basic auth towards the customer's app, as CloudMailin
    does); whitespace is not, because it never survives the trip through shells and config vars.
    """
    if not isinstance(url, str):
        raise InvalidTarget("The target must be a URL such as https://example.com/incoming_mails.")
    url = url.strip()
    if not url:
        raise InvalidTarget("The target is empty; give a URL such as https://example.com/incoming_mails.")
    if len(url) > MAX_TARGET_LENGTH:
        raise InvalidTarget(f"The target URL is longer than {MAX_TARGET_LENGTH} characters.")
    if _WHITESPACE_OR_CONTROL.search(url):
        raise InvalidTarget("The target URL contains spaces or control characters; encode them (%20).")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        # JSON's \ud800 escape: text no database column or HTTP request line can carry.
        raise InvalidTarget("The target URL is not valid Unicode (a lone surrogate escape).") from None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTarget(f"The target URL is malformed: {exc}.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidTarget("The target must be an absolute http:// or https:// URL.")
    _check_host(parts)
    if port == 0:
        raise InvalidTarget("The target URL's port must be between 1 and 65535.")
    if parts.password is not None and unquote(parts.password) == MASKED_PASSWORD:
        # A client sending back the target it read (shown masked) would lose the real password.
        raise InvalidTarget(
            "The target URL's password is the masked one we show (•••); send the real password, "
            "or leave the target out to keep it."
        )
    return url


def _check_host(parts: SplitResult) -> None:
    host = parts.hostname
    if not host:
        raise InvalidTarget("The target URL has no host name.")
    if parts.netloc.rsplit("@", 1)[-1].startswith("["):
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise InvalidTarget(f"The target URL's host {host!r} is not a valid IPv6 address.") from None
        return
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidTarget(f"The target URL's host {host!r} is not a valid host name.") from None
    labels = ascii_host.rstrip(".").split(".")
    if len(ascii_host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise InvalidTarget(f"The target URL's host {host!r} is not a valid host name.")


def display_target(url: str | None) -> str | None:
    """The target as shown to people: a password in the URL is replaced by dots."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:{MASKED_PASSWORD}@{hostport}").geturl()
