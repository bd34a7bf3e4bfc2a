"""Logplex framing for the app log lines an add-on posts to its `log_input_url`.

Heroku's log router reads a body of octet-counted RFC 5424 frames (RFC 6587 section 3.4.1):
`<byte length> <190>1 TIMESTAMP host app cloudmailin - - message`. Priority 190 is facility
local7, severity info. The octet count makes a newline inside a message ambiguous for nobody but
the person reading `heroku logs`, where it would split one event into two misleading lines, so
control characters are flattened to spaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

CONTENT_TYPE = "application/logplex-1"
PRIORITY = 190
VERSION = 1
HOSTNAME = "host"
APP_NAME = "app"
PROCID = "cloudmailin"
# Logplex truncates longer lines; cutting them here keeps a batch's size predictable.
MAX_MESSAGE_BYTES = 10_000

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


@dataclass(frozen=True)
class LogLine:
    at: datetime
    message: str


def sanitise(message: str) -> str:
    """One event, one line: newlines and other control characters become single spaces."""
    flat = _CONTROL.sub(" ", message).strip()
    encoded = flat.encode("utf-8")
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return flat
    return encoded[:MAX_MESSAGE_BYTES].decode("utf-8", errors="ignore")


def timestamp(at: datetime) -> str:
    """RFC 3339 in UTC with an explicit offset, as Heroku shows it: 2026-11-25T12:00:00+00:00."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="seconds")


def frame(line: LogLine) -> bytes:
    syslog = (
        f"<{PRIORITY}>{VERSION} {timestamp(line.at)} {HOSTNAME} {APP_NAME} {PROCID} - - "
        f"{sanitise(line.message)}"
    ).encode()
    return str(len(syslog)).encode("ascii") + b" " + syslog


def body(lines: Iterable[LogLine]) -> bytes:
    return b"".join(frame(line) for line in lines)
