"""When a refusal means the address itself is bad (a hard bounce), so mail to it stops.

One rule for both ways a refusal reaches us: the remote server's SMTP reply during our own
delivery attempt (`workers.delivery.store`), and a delivery status notification that comes back
later to the VERP bounce address (`provider.services.bounces`). A hard bounce puts the address
on the resource's suppression list; anything else (a full mailbox, a policy or content refusal)
says nothing of the address, and suppressing it would stop mail that could still arrive.
"""

from __future__ import annotations

import re
from typing import Protocol

ENHANCED = re.compile(r"^\d{3}[ -]([245])\.(\d{1,3})\.\d{1,3}\b")
"""An RFC 3463 enhanced status code at the start of an SMTP reply (`550 5.1.1 ...`)."""
STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
"""An RFC 3463 status code as a DSN's `Status:` field carries it."""
SMTP_REPLY = re.compile(r"^(\d{3})\b")


class SmtpReply(Protocol):
    @property
    def code(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def permanent(self) -> bool: ...


def is_hard_bounce(reply: SmtpReply) -> bool:
    """A permanent refusal of the address itself (RFC 3463 X.1.x: bad mailbox, no such domain),
    or, when the server gives no enhanced code, the RFC 5321 codes that mean the same (550, 551,
    553). A refusal of the content (5.7.x policy, 5.6.x media) says nothing of the address."""
    if not reply.permanent:
        return False
    enhanced = ENHANCED.match(reply.text)
    if enhanced:
        return enhanced.group(2) == "1"
    return reply.code in (550, 551, 553)


def is_hard_status(status: str, smtp_diagnostic: str | None = None) -> bool:
    """The same rule for a DSN: its `Status` 5.1.x, or the unspecific 5.0.0 with an SMTP
    diagnostic (`Diagnostic-Code: smtp; 550 ...`) that `is_hard_bounce` calls hard."""
    match = STATUS.fullmatch(status.strip())
    if match is None or match.group(1) != "5":
        return False
    if match.group(2) == "1":
        return True
    if match.group(2) == "0" and smtp_diagnostic:
        code = SMTP_REPLY.match(smtp_diagnostic.strip())
        if code:
            return is_hard_bounce(_Reply(int(code.group(1)), smtp_diagnostic.strip()))
    return False


class _Reply:
    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600
