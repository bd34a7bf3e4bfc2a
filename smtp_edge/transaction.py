"""The state of one SMTP transaction (MAIL ... DATA) beyond what aiosmtpd keeps."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import Envelope, Session

from provider.inbound import Envelope as PostEnvelope
from provider.inbound import SpfResult
from provider.plans import LARGEST_MESSAGE_BYTES
from provider.services.routing import Route

from .auth_results import AuthResults
from .spf import spf_domain

NULL_SENDER = "<>"

log = logging.getLogger(__name__)


class Transaction(Envelope):
    """One mail transaction (MAIL to the end of DATA): aiosmtpd's Envelope plus the route chosen at
    RCPT and the SPF check started at MAIL. The handlers call it `transaction`, since `envelope`
    elsewhere is the POST's envelope (provider/inbound/envelope.py, `post_envelope`)."""

    def __init__(self) -> None:
        super().__init__()
        self.route: Route | None = None
        self.declared_size: int | None = None
        self.spf_task: asyncio.Task[SpfResult] | None = None
        self.size = 0  # message bytes received in DATA
        self.oversize = False  # DATA went past the route's limit; `content` is None
        self.refused_routes: set[str] = set()  # routes refused at RCPT (recorded once each)

    @property
    def sender(self) -> str:
        """MAIL FROM as the payload spells it: "" for the null sender."""
        mail_from = self.mail_from or ""
        return "" if mail_from == NULL_SENDER else mail_from

    @property
    def size_limit(self) -> int:
        return self.route.max_message_bytes if self.route else LARGEST_MESSAGE_BYTES

    def discard(self) -> None:
        """The transaction is over (RSET, new EHLO, end of DATA): stop its SPF check."""
        if self.spf_task is not None and not self.spf_task.done():
            self.spf_task.cancel()


@dataclass(frozen=True)
class SessionFacts:
    """What the connection tells about the sender, for the payload and the history."""

    helo: str
    remote_ip: str
    tls: bool
    tls_protocol: str | None  # negotiated, e.g. "TLSv1.3": what CloudMailin calls `tls_cipher`

    @classmethod
    def of(cls, session: Session) -> SessionFacts:
        peer: Any = session.peer
        remote_ip = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")
        return cls(
            helo=session.host_name or "",
            remote_ip=remote_ip,
            tls=session.ssl is not None,
            tls_protocol=_tls_protocol(session.ssl),
        )


def _tls_protocol(extra: dict[str, Any] | None) -> str | None:
    """The protocol version the handshake settled on. Not `cipher()[1]`: that names the version
    that defined the suite (e.g. "TLSv1.0" for ECDHE-RSA-AES256-SHA used over TLS 1.2)."""
    if not extra:
        return None
    ssl_object = extra.get("ssl_object")
    version = ssl_object.version() if ssl_object is not None else None
    return str(version) if version else None


async def spf_verdict(
    task: asyncio.Task[SpfResult] | None, sender: str, facts: SessionFacts
) -> SpfResult:
    """The SPF result for the payload; a check that failed to run counts as temperror."""
    domain = spf_domain(sender, facts.helo)
    if task is None:
        return SpfResult("none", domain)
    try:
        result = await task
    except asyncio.CancelledError:
        if task.cancelled():  # the check was stopped, not this coroutine
            return SpfResult("temperror", domain)
        raise
    except Exception:
        # A bug in the check must not cost the message, but it must not pass unseen either.
        log.exception("SPF check for %s crashed; reporting temperror", domain)
        return SpfResult("temperror", domain)
    return result


def post_envelope(
    transaction: Transaction,
    facts: SessionFacts,
    spf: SpfResult,
    auth: AuthResults | None = None,
) -> PostEnvelope:
    recipients = list(transaction.rcpt_tos)
    return PostEnvelope(
        to=recipients[0],
        recipients=recipients,
        mail_from=transaction.sender,
        helo_domain=facts.helo,
        remote_ip=facts.remote_ip,
        spf=spf,
        tls=facts.tls,
        tls_cipher=facts.tls_protocol,
        dkim=auth.dkim if auth is not None else None,
        dmarc=auth.dmarc if auth is not None else None,
        arc=auth.arc if auth is not None else None,
    )
