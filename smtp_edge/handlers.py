"""What both listeners share: the EHLO they advertise, MAIL FROM with SIZE=, error replies."""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Session

from provider.errors import MessageTooBig, TooManyRecipients

from .replies import MAIL_OK, RCPT_OK, reply_for
from .transaction import Transaction

log = logging.getLogger(__name__)


def declared_size(mail_options: list[str]) -> int | None:
    """The SIZE= parameter of MAIL FROM (RFC 1870); aiosmtpd has checked it is all digits."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


class BaseHandler:
    """aiosmtpd handler hooks common to the MX and submission listeners."""

    max_message_bytes: int
    max_recipients: int

    def offers_auth(self, server: SMTP) -> bool:
        return False

    async def handle_EHLO(
        self, server: SMTP, session: Session, transaction: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        lines = [f"250-{server.hostname}", f"250-SIZE {self.max_message_bytes}", "250-8BITMIME"]
        lines.append("250-PIPELINING")
        lines.append("250-SMTPUTF8")
        if "250-STARTTLS" in responses:
            lines.append("250-STARTTLS")
        if self.offers_auth(server):
            lines.extend(line for line in responses if line.startswith("250-AUTH"))
        lines.append("250 HELP")
        return lines

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        transaction: Transaction,
        address: str,
        mail_options: list[str],
    ) -> str:
        size = declared_size(mail_options)
        if size is not None and size > self.max_message_bytes:
            return MessageTooBig(self.max_message_bytes).smtp_reply
        transaction.mail_from = address
        transaction.mail_options.extend(mail_options)
        transaction.declared_size = size
        self.mail_accepted(server, session, transaction)
        return MAIL_OK

    def mail_accepted(self, server: SMTP, session: Session, transaction: Transaction) -> None:
        """A hook for work that can start as soon as the sender is known."""

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        transaction: Transaction,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(transaction.rcpt_tos) >= self.max_recipients:
            return TooManyRecipients().smtp_reply
        return await self.recipient(session, transaction, address)

    async def recipient(self, session: Session, transaction: Transaction, address: str) -> str:
        """Decide on one recipient; by default every address is taken."""
        transaction.rcpt_tos.append(address)
        return RCPT_OK

    async def handle_exception(self, error: Exception) -> str:
        return reply_for(error)
