"""A logplex drain input: what an add-on with `requires: ["log_input"]` posts app log lines to.

`POST /logs`, Basic auth with the token Heroku put in `log_input_url`, Content-Type
`application/logplex-1`, a body of octet-counted RFC 5424 frames (`<len> <pri>1 ts host app procid
msgid sd msg`). Lines are kept per add-on for tests to read."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from flask import Blueprint, Response, request

from tests.heroku_standin.context import standin
from tests.heroku_standin.errors import PlatformError
from tests.heroku_standin.state import LogLine

MAX_BODY = 1024 * 1024
HEADER = re.compile(r"^<(\d{1,3})>(\d{1,2}) ")

blueprint = Blueprint("logplex", __name__)


class FrameError(ValueError):
    """The body is not a sequence of octet-counted RFC 5424 frames."""


@dataclass(frozen=True)
class Frame:
    priority: int
    version: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    message: str


def _structured_data(rest: str) -> tuple[str, str]:
    """Split `SD [SP MSG]`: SD is `-` or one or more `[...]` elements with `\\]` escapes."""
    if rest.startswith("-"):
        return "-", rest[1:]
    if not rest.startswith("["):
        raise FrameError("structured data must be '-' or start with '['")
    i, escaped, depth = 0, False, 0
    while i < len(rest):
        ch = rest[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0 and (i + 1 == len(rest) or rest[i + 1] != "["):
                return rest[: i + 1], rest[i + 1 :]
        i += 1
    raise FrameError("unterminated structured data")


def parse_syslog(text: str) -> Frame:
    head = HEADER.match(text)
    if head is None:
        raise FrameError("a frame must start with <PRI>VERSION")
    fields = text[head.end() :].split(" ", 5)
    if len(fields) < 6:
        raise FrameError("a frame needs timestamp, hostname, app-name, procid, msgid and SD")
    timestamp, hostname, app_name, procid, msgid, rest = fields
    sd, tail = _structured_data(rest)
    if tail and not tail.startswith(" "):
        raise FrameError("the message must follow the structured data after a space")
    message = tail[1:] if tail else ""
    return Frame(
        priority=int(head.group(1)),
        version=int(head.group(2)),
        timestamp=timestamp,
        hostname=hostname,
        app_name=app_name,
        procid=procid,
        msgid=msgid,
        structured_data=sd,
        message=message.removesuffix("\n"),
    )


def parse_frames(data: bytes) -> list[Frame]:
    frames: list[Frame] = []
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 12)
        if space == -1 or not data[pos:space].isdigit():
            raise FrameError(f"expected an octet count at byte {pos}")
        length = int(data[pos:space])
        start, end = space + 1, space + 1 + length
        if length == 0 or end > len(data):
            raise FrameError(f"the frame at byte {pos} claims {length} bytes")
        try:
            frames.append(parse_syslog(data[start:end].decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise FrameError(f"the frame at byte {pos} is not UTF-8") from exc
        pos = end
        while pos < len(data) and data[pos : pos + 1] in (b"\n", b"\r"):
            pos += 1
    return frames


@blueprint.post("/logs")
def receive() -> Response:
    s = standin()
    auth = request.authorization
    password = (auth.password or "") if auth is not None else ""
    with s.store.lock:
        # The token names the app's log stream, which outlives the add-on: a provider's last line
        # ("deprovisioned") arrives after Heroku has removed the add-on.
        addon = next(
            (
                a
                for a in [*s.store.addons.values(), *s.store.gone.values()]
                if hmac.compare_digest(a.log_token.encode(), password.encode())
            ),
            None,
        )
    if addon is None or not password:
        raise PlatformError(401, "unauthorized", "Unknown log token.")
    if request.mimetype != "application/logplex-1":
        raise PlatformError(415, "unsupported_media_type", "Send application/logplex-1.")
    if (request.content_length or 0) > MAX_BODY:
        raise PlatformError(413, "request_too_large", "At most 1 MB per post.")
    try:
        frames = parse_frames(request.get_data(cache=False))
    except FrameError as exc:
        raise PlatformError(400, "bad_request", f"Bad logplex body: {exc}") from exc
    count = request.headers.get("Logplex-Msg-Count")
    if count is not None and count != str(len(frames)):
        raise PlatformError(400, "bad_request", f"Logplex-Msg-Count {count} but {len(frames)} frames.")
    user_agent = request.headers.get("User-Agent", "")
    with s.store.lock:
        app_name = s.store.apps[addon.app_id].name
        for f in frames:
            s.store.log_lines.append(
                LogLine(
                    addon_id=addon.id,
                    app_name=app_name,
                    priority=f.priority,
                    version=f.version,
                    timestamp=f.timestamp,
                    hostname=f.hostname,
                    app_field=f.app_name,
                    procid=f.procid,
                    msgid=f.msgid,
                    structured_data=f.structured_data,
                    message=f.message,
                    user_agent=user_agent,
                )
            )
        s.store.notify()
    return Response(status=204)
