"""Why an outbound message is refused, with the answer each edge gives.

Every refusal is permanent for the message as it stands (the sender must change it), so each is a
`PermanentError` whose SMTP reply the submission listener sends after DATA, and whose
`http_status` and `text` the JSON API answers as `{"status", "error"}`. The monthly quota is the
exception: it frees up, so it is temporary for SMTP and a 429 for the API.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import PermanentError, TemporaryError


class MessageRefused(PermanentError):
    """The request cannot become a message as it is (RFC 3463 X.6.0: bad content)."""

    code = 550
    enhanced = "5.6.0"
    default_text = "Message refused"
    http_status: ClassVar[int] = 422


class InvalidField(MessageRefused):
    """A field of the wrong type, an unknown field, or a value that cannot be read."""


class NoBody(MessageRefused):
    default_text = "Message body not found: give plain, html, markdown or raw"


class InvalidAddress(MessageRefused):
    code = 553
    enhanced = "5.1.3"


class TooManyRecipients(MessageRefused):
    enhanced = "5.5.3"

    def __init__(self, limit: int) -> None:
        super().__init__(f"Too many recipients: at most {limit} in to and cc together")


class OutboundTooBig(MessageRefused):
    """RFC 1870: 552 for a message over the size the server accepts."""

    code = 552
    enhanced = "5.3.4"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"Message too big: at most {limit // (1024 * 1024)} MB ({limit} bytes)")


class BlockedAttachment(MessageRefused):
    enhanced = "5.7.1"

    def __init__(self, file_name: str, extension: str) -> None:
        super().__init__(f"Attachment {file_name!r} refused: .{extension} files may not be sent")


class HeaderInjection(MessageRefused):
    """CR or LF inside a header name, value or address would let a value forge other headers."""

    def __init__(self, where: str) -> None:
        super().__init__(f"{where} may not contain carriage returns or line feeds")


class RawMismatch(MessageRefused):
    def __init__(self, field: str) -> None:
        super().__init__(
            f"The raw message's {field.capitalize()} header does not match the request's {field}"
        )


class SenderNotAllowed(MessageRefused):
    enhanced = "5.7.1"

    def __init__(self, domain: str) -> None:
        super().__init__(
            f"Sending from {domain} is not allowed: add it as a sending domain and verify its DNS records"
        )


class AccountClosed(MessageRefused):
    """The resource was deprovisioned after the SMTP session authenticated."""

    enhanced = "5.7.1"
    default_text = "This add-on has been removed; it can no longer send mail"


class OutboundQuotaExceeded(TemporaryError):
    """The plan's monthly outbound count is used up: it frees up next month or on upgrade."""

    code = 452
    enhanced = "4.2.2"
    http_status: ClassVar[int] = 429

    def __init__(self, plan: str, limit: int) -> None:
        super().__init__(
            f"Monthly outbound limit of the {plan} plan reached ({limit:,} messages); upgrade the plan "
            "or wait for next month"
        )
