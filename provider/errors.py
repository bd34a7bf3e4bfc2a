"""Named domain errors: why a recipient or a message is refused, each with the SMTP reply it earns.

The split that matters to a sending MTA is permanent (5xx: bounce now) versus temporary (4xx:
keep the message and retry later), so every error is one or the other and carries its whole
reply (code, RFC 3463 enhanced status, text). The SMTP edge turns exceptions into replies in one
place (`smtp_edge.replies.reply_for`); the web process can show the same `text` to users.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """A refusal with a definite SMTP reply. Subclasses fix the code and the enhanced status."""

    code: ClassVar[int] = 451
    enhanced: ClassVar[str] = "4.3.0"
    default_text: ClassVar[str] = "Local error; try again later"
    permanent: ClassVar[bool] = False

    def __init__(self, text: str | None = None) -> None:
        self.text = text or self.default_text
        super().__init__(self.text)

    @property
    def smtp_reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


class PermanentError(DomainError):
    """5xx: the sender must not retry this message as it is."""

    code = 550
    enhanced = "5.0.0"
    default_text = "Message refused"
    permanent = True


class TemporaryError(DomainError):
    """4xx: the sender keeps the message and retries later (RFC 5321 section 4.5.4)."""

    code = 451
    enhanced = "4.3.0"
    default_text = "Local error; try again later"


# --- Recipients (RCPT) -------------------------------------------------------------------------


class UnknownRecipient(PermanentError):
    """No such forward address, a deprovisioned resource, or an unverified custom domain."""

    enhanced = "5.1.1"
    default_text = "No such recipient here"


class RelayDenied(PermanentError):
    """The recipient's domain is not served here; the MX never relays (RFC 5321 section 3.6.2)."""

    enhanced = "5.7.1"
    default_text = "Relaying denied: this server only accepts mail for the domains it serves"


class NoTarget(PermanentError):
    """The address exists but has no target URL, so there is nowhere to deliver to."""

    enhanced = "5.2.1"
    default_text = "This address has no target URL configured"


class QuotaExceeded(TemporaryError):
    """The plan's monthly message quota is used up.

    Temporary on purpose: the quota frees up at the start of the month or as soon as the plan is
    upgraded, which is RFC 3463's "mailbox full" (X.2.2, "a persistent transient failure"); RFC
    5321 section 4.5.3.1.10 likewise treats a storage or count limit at RCPT as 452. The sending
    MTA keeps the message and retries, so nothing is lost while the customer reacts.
    """

    code = 452
    enhanced = "4.2.2"
    default_text = "Monthly message quota of this address's plan reached; retry later or upgrade"


class SecondTarget(TemporaryError):
    """The recipient routes to another target than the ones already accepted in the transaction.

    One transaction makes one POST, so the sender must send this recipient in a new transaction
    (RFC 5321 section 4.5.3.1.10: 452 for recipients over what the server accepts at once).
    """

    code = 452
    enhanced = "4.5.3"
    default_text = "Recipients for another target must be sent in a separate transaction"


class TooManyRecipients(TemporaryError):
    code = 452
    enhanced = "4.5.3"
    default_text = "Too many recipients in one transaction"


# --- Messages (MAIL SIZE=, end of DATA) ---------------------------------------------------------


class MessageTooBig(PermanentError):
    """Over the plan's maximum message size (RFC 1870: 552 at MAIL, RCPT or after DATA)."""

    code = 552
    enhanced = "5.3.4"
    default_text = "Message too big for this address"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"Message size exceeds the limit of {limit} bytes")


class UnprocessableMessage(PermanentError):
    """The message's structure exceeds the parser's caps (part count, header count)."""

    code = 554
    enhanced = "5.6.0"
    default_text = "Message structure too complex to process"


# --- The target's verdict (the POST) ------------------------------------------------------------


class TargetRejected(PermanentError):
    """The target answered 4xx: the app does not want this message."""

    enhanced = "5.0.0"

    def __init__(self, http_status: int, reason: str = "") -> None:
        self.http_status = http_status
        text = f"Target rejected the message (HTTP {http_status})"
        super().__init__(f"{text}: {reason}" if reason else text)


class TargetFailed(TemporaryError):
    """The target answered 5xx or another code that is not success, refusal or redirect."""

    code = 450
    enhanced = "4.0.0"

    def __init__(self, http_status: int) -> None:
        self.http_status = http_status
        super().__init__(f"Target failed (HTTP {http_status}); try again later")


class TooManyRedirects(TemporaryError):
    code = 450
    enhanced = "4.4.6"

    def __init__(self, http_status: int, followed: int) -> None:
        self.http_status = http_status
        super().__init__(f"Target redirected more than {followed} times; try again later")


class TargetTimeout(TemporaryError):
    code = 450
    enhanced = "4.4.1"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Target did not answer within {seconds:g} seconds; try again later")


class TargetUnreachable(TemporaryError):
    """Connection refused or reset, DNS failure, TLS failure: the target could not be asked."""

    code = 450
    enhanced = "4.4.1"

    def __init__(self, why: str) -> None:
        super().__init__(f"Target unreachable ({why}); try again later")


# --- Sessions -----------------------------------------------------------------------------------


class ServiceBusy(TemporaryError):
    code = 421
    enhanced = "4.3.2"
    default_text = "Too many connections; try again later"


class ShuttingDown(TemporaryError):
    code = 421
    enhanced = "4.3.2"
    default_text = "Service shutting down; try again later"


class TooManyFromClient(TemporaryError):
    """This client address holds its share of the sessions already. 421 closes the channel at the
    greeting (RFC 5321 sections 3.8 and 4.2.2); X.7.0 as other MTAs answer per-client limits."""

    code = 421
    enhanced = "4.7.0"
    default_text = "Too many connections from your address; try again later"


class IdleTimeout(TemporaryError):
    """No command within the idle limit (RFC 5321 section 4.5.3.2: the server may close the
    channel; 421 says why first, RFC 3463 X.4.2 "bad connection")."""

    code = 421
    enhanced = "4.4.2"
    default_text = "Timed out waiting for the client; closing"


class SessionTooLong(TemporaryError):
    """The session reached its time limit (SMTP_SESSION_TIME_LIMIT): the sender reconnects for
    whatever it has left, and nothing is lost (a delivery in progress finishes first)."""

    code = 421
    enhanced = "4.4.2"
    default_text = "Session time limit reached; reconnect to continue"


class AuthThrottled(TemporaryError):
    """Too many failed AUTH attempts from one client address (RFC 4954: 454 temporary failure)."""

    code = 454
    enhanced = "4.7.0"
    default_text = "Too many failed authentication attempts; try again later"


class AuthUnavailable(TemporaryError):
    """The credential could not be checked (database out of reach): RFC 4954's temporary
    authentication failure, so the client retries instead of taking its key for wrong."""

    code = 454
    enhanced = "4.7.0"
    default_text = "Temporary authentication failure; try again later"


# --- The stores every process depends on --------------------------------------------------------


class DatabaseUnavailable(TemporaryError):
    """PostgreSQL cannot be reached (down, restarting, out of connections) or dropped the
    connection mid-request: the operation did not happen, or did not commit, and may be retried
    as it is. The web process answers 503 with Retry-After (spec/heroku.md: Heroku retries)."""

    code = 451
    enhanced = "4.3.0"
    default_text = "CloudMailin cannot reach its database right now; try again in a few seconds"


class StoreFailed(TemporaryError):
    """The address's S3-compatible store did not take an attachment or the message (refused,
    unreachable, too slow): nothing is POSTed without them, so the sender retries later.

    `detail` is the store's own words, for the history; the sender only hears that it failed.
    """

    code = 450
    enhanced = "4.3.0"
    default_text = "Could not store the message in its address's store; try again later"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__()
