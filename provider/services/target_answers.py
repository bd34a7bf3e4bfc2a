"""What a target's HTTP answer means for the mail: the one rule the SMTP edge and the dashboard's
"send a test message" both apply (spec/inbound.md, the status table).

A 2xx accepts the message (the edge answers 250); a 4xx refuses it for good (`TargetRejected`,
a 5xx to the sender, with the first line of a text/plain body as the reason); anything else
(5xx, 1xx, 3xx without a Location) fails for now (`TargetFailed`, a 4xx: the sender retries).
Redirects are followed by the caller before this is asked. Kept free of any HTTP client, so the
edge (aiohttp) and the web process (requests) judge the same answer the same way.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import DomainError, TargetFailed, TargetRejected

USER_AGENT = "CloudMailin Server"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
REASON_LIMIT = 400
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_NOT_ASCII = re.compile(r"[^\x20-\x7e]")
_SPACES = re.compile(r"\s{2,}")


def decode_body(body: bytes, charset: str | None) -> str:
    """The target's body as text, in its declared charset when Python knows it as a text encoding;
    otherwise (x-bogus, base64, a codec that fails on its input) as UTF-8. Never raises."""
    if charset:
        try:
            return body.decode(charset, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass
    return body.decode("utf-8", "replace")


def sanitize_reason(body: bytes, charset: str | None) -> str:
    """The first line of a text/plain refusal, safe inside an SMTP reply (printable ASCII)."""
    text = decode_body(body, charset)
    first = re.split(r"[\r\n]", text, maxsplit=1)[0]
    # Accented letters keep their base letter (é -> e); other non-ASCII becomes "?".
    first = "".join(c for c in unicodedata.normalize("NFKD", first) if not unicodedata.combining(c))
    first = _CONTROL.sub(" ", first)
    first = _NOT_ASCII.sub("?", first)
    return _SPACES.sub(" ", first).strip()[:REASON_LIMIT].rstrip()


def accepted_reply(http_status: int) -> str:
    """The edge's 250 once the target took the message."""
    return f"250 2.0.0 Message accepted by the target (HTTP {http_status})"


def smtp_answer(http_status: int | None, error: DomainError | None) -> str:
    """What the edge answers the sender for the target's answer (`verdict`'s result)."""
    return accepted_reply(http_status or 200) if error is None else error.smtp_reply


def verdict(code: int, content_type: str | None, charset: str | None, body: bytes) -> DomainError | None:
    """None when the target accepted the message; else the refusal (or failure) it stands for.
    `content_type` is the media type alone (`text/plain`), `body` the first bytes read."""
    if 200 <= code < 300:
        return None
    if 400 <= code < 500:
        reason = sanitize_reason(body, charset) if content_type == "text/plain" else ""
        return TargetRejected(code, reason)
    return TargetFailed(code)
