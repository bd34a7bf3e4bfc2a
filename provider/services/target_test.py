"""The dashboard's "send a test message": a sample email POSTed to an address's target as the edge
would POST it, and what the target answered.

The payload is built by the edge's own builders (`provider.inbound.parse_message`, `render` in the
address's format and `size_as_string`, `sign` with the address's secret), so a target that takes
the test takes real mail. The answer is judged by the edge's rule (`target_answers.verdict` and
`smtp_answer`): the page shows the SMTP reply a sender would have had, and the outcome the history
would have recorded (`outcomes.outcome_of`). What differs from real mail, on purpose: the POST
goes out from the web process with `requests` and a short timeout (a page waits for it), a
redirect is shown rather than followed (the edge re-POSTs up to `MAX_REDIRECTS` times; the page
says where to), and a store is not written to (the sample's attachment goes inline). Nothing here
raises for a target that cannot be asked: each failure is an answer with a message saying why.
"""

from __future__ import annotations

import email.policy
import logging
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import format_datetime

import requests
from sqlalchemy.orm import Session

from ..errors import DomainError, NoTarget, TargetTimeout, TargetUnreachable
from ..inbound import Envelope, SpfResult, parse_message, render, sign
from ..inbound.delivery_id import HEADER as DELIVERY_ID_HEADER
from ..inbound.delivery_id import delivery_id
from ..inbound.signature import HEADER as SIGNATURE_HEADER
from ..models import Address
from ..models.base import utcnow
from ..models.inbound_message import CLIENT_TIMEOUT, UNREACHABLE
from ..settings import Settings
from . import applog, applog_lines
from .address_settings import resource_address
from .addresses import display_target, forward_address
from .history import RESPONSE_BODY_LIMIT
from .outcomes import outcome_of
from .signing_secrets import signing_secret
from .target_answers import MAX_REDIRECTS, REDIRECTS, USER_AGENT, decode_body, smtp_answer, verdict

log = logging.getLogger(__name__)

MAX_TEST_TIMEOUT = 10.0
"""The longest a test waits for the target (the edge's `TARGET_TIMEOUT` when that is shorter):
the page's request waits for it."""
TEST_SENDER = "test-sender@example.com"
TEST_SUBJECT = "CloudMailin test message"
TEST_REMOTE_IP = "192.0.2.1"  # RFC 5737 documentation range: no real sender has it


@dataclass(frozen=True)
class TargetAnswer:
    """What the target answered a test message, for a page to show as it is."""

    target: str  # the URL, its password masked
    format: str
    status: str  # the HTTP code as text, or client_timeout / unreachable (the history's words)
    http_status: int | None
    target_ms: int
    body: str | None  # the first bytes of the target's body, as text
    smtp_reply: str | None  # what the edge would have answered the sender; None for a redirect
    outcome: str | None  # accepted / rejected / deferred, as the history would file it
    problem: str | None  # why the target could not be asked, or where it redirected to


def sample_message(to: str, now_id: str) -> bytes:
    """A small email with a text body, an HTML body and a text attachment: every part of the
    payload shape a target's code reads."""
    message = EmailMessage()
    message["From"] = f"CloudMailin test <{TEST_SENDER}>"
    message["To"] = to
    message["Subject"] = TEST_SUBJECT
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = f"<{now_id}@test.cloudmailin.example>"
    message.set_content("This is a test message sent from the CloudMailin dashboard.\n")
    message.add_alternative("<p>This is a test message sent from the <b>CloudMailin</b> dashboard.</p>\n",
                            subtype="html")
    message.add_attachment(b"A sample attachment.\n", maintype="text", subtype="plain",
                           filename="sample.txt")
    return message.as_bytes(policy=email.policy.SMTP)


def send_test_message(
    session: Session, settings: Settings, resource_id: str, address_id: int
) -> TargetAnswer:
    """POST a sample to the resource's address's target and judge the answer; `UnknownAddress`
    if the resource has no such address. Records an app log line; the caller commits."""
    address = resource_address(session, resource_id, address_id)
    local_id, target, fmt = address.local_id, address.target_url, address.format
    to = forward_address(settings, local_id)
    raw = sample_message(to, uuid.uuid4().hex)
    content_type, body, signature = _payload(settings, address, raw, to)
    session.rollback()  # no transaction held open while the target takes its time
    if not target:
        error = NoTarget()
        return TargetAnswer("", fmt, "", None, 0, None, error.smtp_reply, None,
                            f"{error.text}: set one above.")
    timeout = min(settings.target_timeout, MAX_TEST_TIMEOUT)
    headers = {
        "User-Agent": USER_AGENT,
        "Content-Type": content_type,
        SIGNATURE_HEADER: signature,
        DELIVERY_ID_HEADER: delivery_id(f"test:{address_id}", [to], raw),
    }
    answer = _post(target, fmt, headers, body, timeout)
    line = applog_lines.test_message(local_id, answer.status, answer.target_ms)
    applog.record(session, settings, resource_id, line)
    log.info("test message resource=%s address=%s status=%s", resource_id, address_id, answer.status)
    return answer


def _payload(settings: Settings, address: Address, raw: bytes, to: str) -> tuple[str, bytes, str]:
    envelope = Envelope(
        to=to, recipients=[to], mail_from=TEST_SENDER, helo_domain="mail.example.com",
        remote_ip=TEST_REMOTE_IP, spf=SpfResult("none", "example.com"), tls=True, tls_cipher="TLSv1.3",
    )
    payload = render(address.format, raw, parse_message(raw), envelope, size_as_string=address.size_as_string)
    signature = sign(signing_secret(settings, address), payload.body, int(time.time()))
    return payload.content_type, payload.body, signature


def _post(target: str, fmt: str, headers: dict[str, str], body: bytes, timeout: float) -> TargetAnswer:
    shown = display_target(target) or ""
    started = time.monotonic()

    def failed(status: str, error: DomainError, problem: str) -> TargetAnswer:
        elapsed = int((time.monotonic() - started) * 1000)
        return TargetAnswer(shown, fmt, status, None, elapsed, None, error.smtp_reply, outcome_of(status),
                            problem)

    try:
        with requests.post(target, data=body, headers=headers, timeout=timeout, allow_redirects=False,
                           stream=True) as response:
            raw = response.raw.read(RESPONSE_BODY_LIMIT, decode_content=True) or b""
            elapsed = int((time.monotonic() - started) * 1000)
            code = response.status_code
            media_type, charset = _content_type(response.headers.get("Content-Type"))
            location = response.headers.get("Location")
    except requests.exceptions.SSLError as exc:
        return failed(UNREACHABLE, TargetUnreachable("TLS error"),
                      f"The TLS handshake with the target failed: {_reason(exc)}.")
    except requests.exceptions.Timeout:
        return failed(CLIENT_TIMEOUT, TargetTimeout(timeout),
                      f"The target did not answer within {timeout:g} seconds.")
    except requests.exceptions.ConnectionError as exc:
        why = "DNS lookup failed" if _is_dns(exc) else "connection refused"
        return failed(UNREACHABLE, TargetUnreachable(why), f"The target could not be reached ({why}).")
    except requests.exceptions.RequestException as exc:
        return failed(UNREACHABLE, TargetUnreachable("invalid URL"),
                      f"The target cannot be requested: {_reason(exc)}.")
    text = decode_body(raw, charset) if raw else None
    if code in REDIRECTS and location:
        return TargetAnswer(
            shown, fmt, str(code), code, elapsed, text, None, None,
            f"The target redirected to {display_target(location)}. The edge POSTs the same message "
            f"there (up to {MAX_REDIRECTS} redirects); put that URL in the target to test it.",
        )
    error = verdict(code, media_type, charset, raw)
    return TargetAnswer(shown, fmt, str(code), code, elapsed, text, smtp_answer(code, error),
                      outcome_of(str(code)), None)


def _content_type(header: str | None) -> tuple[str | None, str | None]:
    """The media type and charset of a Content-Type header (None for what it does not say)."""
    if not header:
        return None, None
    parsed = Message()
    parsed["Content-Type"] = header
    return parsed.get_content_type(), parsed.get_content_charset()


def _is_dns(exc: BaseException) -> bool:
    text = repr(exc)
    return "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text


def _reason(exc: BaseException) -> str:
    """The innermost cause's words, short: requests wraps urllib3 wraps ssl."""
    inner: BaseException = exc
    while inner.__context__ is not None and len(repr(inner.__context__)) < 4000:
        inner = inner.__context__
    return str(inner)[:300] or type(inner).__name__
