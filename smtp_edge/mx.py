"""The MX listener's handler: route at RCPT, POST after DATA, answer with the target's verdict.

Flow of one transaction:
- MAIL FROM: SIZE= over the largest plan's limit -> 552 5.3.4; the SPF check starts now, in a
  worker thread, so its DNS time overlaps with RCPT and DATA.
- RCPT TO: `routing.route_recipient` (one indexed query, in a DB thread). Recipients of a
  second target -> 452 4.5.3. The first accepted recipient fixes the plan: SIZE= over its limit
  -> 552 5.3.4, monthly quota used up -> 452 4.2.2; both refusals are recorded in the history.
- DATA: the message is read up to the plan's limit (over it: 552 5.3.4 at the end, recorded,
  no POST), parsed and rendered in a worker thread, POSTed, and the target's answer becomes the
  reply. The delivery runs as its own task: a client that hangs up after the final dot does not
  cancel a POST in flight, so the history always says what the target was told.
- Bounces (RCPT to `bounces+<message id>@BOUNCE_DOMAIN`, the route `BOUNCES`) are not POSTed:
  DATA hands them to smtp_edge/bounces.py, which records the delivery report.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from aiosmtpd.smtp import SMTP, Session

from provider.errors import (
    DomainError,
    MessageTooBig,
    QuotaExceeded,
    SecondTarget,
    StoreFailed,
    UnprocessableMessage,
)
from provider.models.base import utcnow
from provider.models.inbound_message import (
    LOCAL_ERROR,
    REJECTED_CONTENT,
    REJECTED_QUOTA,
    REJECTED_SIZE,
    STORE_ERROR,
)
from provider.plans import LARGEST_MESSAGE_BYTES
from provider.services import applog_lines
from provider.services.history import Delivery
from provider.services.routing import BOUNCES, Route
from provider.services.target_answers import smtp_answer
from provider.services.usage import quota_reached

from .bounces import take_bounce
from .context import EdgeContext, Recording
from .handlers import BaseHandler
from .payloads import PreparedPost, prepare_post
from .replies import POSTMASTER_OK, RCPT_OK, error_for
from .stores import StoreUploads
from .transaction import SessionFacts, SpfResult, Transaction, post_envelope, spf_verdict

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 100
"""Recipients per transaction (RFC 5321 section 4.5.3.1.8: at least 100 must be accepted)."""


_REFUSAL_STATUSES: tuple[tuple[type[DomainError], str], ...] = (
    (UnprocessableMessage, REJECTED_CONTENT),
    (MessageTooBig, REJECTED_SIZE),
    (QuotaExceeded, REJECTED_QUOTA),
    (StoreFailed, STORE_ERROR),
)


def refusal_status(error: DomainError) -> str:
    """The history status of a message the edge refused itself, not the target (README's inbound
    table): the limit or the parser that said no, else `local_error` (the edge failed), whether
    the reply the error carries is temporary or permanent."""
    for kind, status in _REFUSAL_STATUSES:
        if isinstance(error, kind):
            return status
    return LOCAL_ERROR


@dataclass(slots=True)
class _Message:
    """One transaction's message, as the history sees it: filled in as its delivery learns more
    (SPF, DKIM and DMARC, the parsed message), by that delivery alone. Assigned, not rebuilt with
    `dataclasses.replace` three times a message (2% of the edge's CPU in bench/inbound.py)."""

    route: Route
    sender: str
    recipients: list[str]
    facts: SessionFacts
    received_at: datetime
    size: int = 0
    spf: str | None = None
    dkim: str | None = None  # AuthResults.dkim_summary
    dmarc: str | None = None
    message_id: str | None = None
    subject: str | None = None
    stored_message_key: str | None = None


class MxHandler(BaseHandler):
    max_message_bytes = LARGEST_MESSAGE_BYTES
    max_recipients = MAX_RECIPIENTS

    def __init__(self, context: EdgeContext) -> None:
        self.context = context
        self.settings = context.settings
        self.stores = StoreUploads(context.settings)

    def mail_accepted(self, server: SMTP, session: Session, transaction: Transaction) -> None:
        facts = SessionFacts.of(session)
        transaction.spf_task = asyncio.create_task(
            self.context.spf.check(facts.remote_ip, transaction.sender, facts.helo)
        )

    async def recipient(self, session: Session, transaction: Transaction, address: str) -> str:
        try:
            route = await self.context.routes.route(address)
        except Exception as exc:
            return error_for(exc).smtp_reply
        chosen = transaction.route
        if chosen is not None:
            if route.key != chosen.key:
                return SecondTarget().smtp_reply
            transaction.rcpt_tos.append(address)
            return RCPT_OK
        error = self._limits(route, transaction)
        if error is not None:
            if route.key not in transaction.refused_routes:  # one row per message, not per RCPT
                transaction.refused_routes.add(route.key)
                message = _Message(
                    route,
                    transaction.sender,
                    [address],
                    SessionFacts.of(session),
                    utcnow(),
                    size=transaction.declared_size or 0,
                )
                await self._record(message, refusal_status(error), error.smtp_reply)
            return error.smtp_reply
        transaction.route = route
        transaction.rcpt_tos.append(address)
        return RCPT_OK

    @staticmethod
    def _limits(route: Route, transaction: Transaction) -> DomainError | None:
        if transaction.declared_size is not None and transaction.declared_size > route.max_message_bytes:
            return MessageTooBig(route.max_message_bytes)
        if route.plan is not None and quota_reached(route.plan, route.inbound_this_month):
            return QuotaExceeded()
        return None

    async def handle_DATA(self, server: SMTP, session: Session, transaction: Transaction) -> str:
        route = transaction.route
        assert route is not None  # DATA needs an accepted recipient, which sets the route
        if route.key == BOUNCES and not transaction.oversize:
            return await self._bounce(transaction)
        message = self._message(session, transaction)
        # The delivery owns the SPF check from here: a client leaving after the final dot ends
        # the transaction (which would cancel the check) but not the delivery.
        spf_task, transaction.spf_task = transaction.spf_task, None
        if transaction.oversize:
            error = MessageTooBig(route.max_message_bytes)
            await self._record(await self._with_spf(message, spf_task), REJECTED_SIZE, error.smtp_reply)
            return error.smtp_reply
        raw = transaction.content
        assert isinstance(raw, bytes)
        transaction.content = transaction.original_content = None  # the task below owns the bytes now
        delivery = self.context.keep(
            asyncio.create_task(self._deliver(message, raw, transaction, spf_task))
        )
        del raw  # the task holds the only reference and drops it once the payload is built
        return await asyncio.shield(delivery)

    async def _bounce(self, transaction: Transaction) -> str:
        """A delivery report for outbound mail (smtp_edge/bounces.py): recorded, not POSTed.
        Like a delivery, the recording runs on when the client hangs up after the final dot."""
        raw = transaction.content
        assert isinstance(raw, bytes)
        transaction.content = transaction.original_content = None
        task = take_bounce(self.context, transaction.sender, list(transaction.rcpt_tos), raw)
        return await asyncio.shield(self.context.keep(asyncio.create_task(task)))

    async def data_flooded(self, session: Session, transaction: Transaction) -> None:
        """The client kept sending far past the limit and is being cut off: record the refusal."""
        if transaction.route is None:
            return
        error = MessageTooBig(transaction.route.max_message_bytes)
        message = await self._with_spf(self._message(session, transaction), transaction.spf_task)
        await self._record(message, REJECTED_SIZE, error.smtp_reply)

    @staticmethod
    def _message(session: Session, transaction: Transaction) -> _Message:
        assert transaction.route is not None
        return _Message(
            transaction.route,
            transaction.sender,
            list(transaction.rcpt_tos),
            SessionFacts.of(session),
            utcnow(),
            size=transaction.size,
        )

    @staticmethod
    async def _with_spf(message: _Message, spf_task: asyncio.Task[SpfResult] | None) -> _Message:
        spf = await spf_verdict(spf_task, message.sender, message.facts)
        message.spf = spf.result
        return message

    async def _deliver(
        self,
        message: _Message,
        raw: bytes,
        transaction: Transaction,
        spf_task: asyncio.Task[SpfResult] | None,
    ) -> str:
        try:
            spf = await spf_verdict(spf_task, message.sender, message.facts)
            message.spf = spf.result
            auth = await self.context.check_auth(raw, spf)
            message.dkim, message.dmarc = auth.dkim_summary, auth.dmarc.result
            payload_envelope = post_envelope(transaction, message.facts, spf, auth)
            # With a store, parse, upload and render run in the store's threads (boto3 blocks).
            run = self.context.in_cpu if message.route.store is None else self.stores.run
            try:
                post = await run(
                    len(raw), prepare_post, self.settings, message.route, raw, payload_envelope,
                    self.stores, message.received_at,
                )
            finally:
                del raw
            message.message_id, message.subject = post.message_id, post.subject
            message.stored_message_key = post.stored_message_key
            return await self._post(message, post)
        except Exception as exc:
            error = error_for(exc)
            # The history says what the sender was told, whatever went wrong here.
            detail = error.detail if isinstance(error, StoreFailed) else None
            await self._record(message, refusal_status(error), error.smtp_reply, response_body=detail)
            return error.smtp_reply

    async def _post(self, message: _Message, post: PreparedPost) -> str:
        route = message.route
        if route.target_url is None:
            log.info(
                "postmaster mail (no target set) from=%s message_id=%s subject=%r size=%d",
                message.sender or "<>",
                post.message_id,
                post.subject,
                message.size,
            )
            return POSTMASTER_OK
        result = await self.context.poster.post(
            route.target_url, post.content_type, post.body, post.signature, post.delivery_id
        )
        reply = smtp_answer(result.http_status, result.error)
        await self._record(
            message,
            result.status,
            reply,
            http_status=result.http_status,
            response_body=result.response_body,
            target_ms=result.target_ms,
            counted=result.accepted,
        )
        return reply

    async def _record(
        self,
        message: _Message,
        status: str,
        reply: str,
        *,
        http_status: int | None = None,
        response_body: str | None = None,
        target_ms: int | None = None,
        counted: bool = False,
    ) -> None:
        route = message.route
        if route.resource_id is None:
            log.info(
                "postmaster mail from=%s status=%s reply=%r", message.sender or "<>", status, reply
            )
            return
        delivery = Delivery(
            resource_id=route.resource_id,
            address_id=route.address_id,
            envelope_from=message.sender,
            envelope_to=message.recipients[0],
            recipients=message.recipients,
            status=status,
            smtp_reply=reply,
            message_id=message.message_id,
            subject=message.subject,
            size=message.size,
            spf_result=message.spf,
            dkim_result=message.dkim,
            dmarc_result=message.dmarc,
            tls=message.facts.tls,
            remote_ip=message.facts.remote_ip,
            target_url=route.target_url,
            http_status=http_status,
            response_body=response_body,
            target_ms=target_ms,
            received_at=message.received_at,
            stored_message_key=message.stored_message_key,
            helo_domain=message.facts.helo,
        )
        line = None
        if route.log_drain:
            line = applog_lines.inbound(message.sender, message.recipients[0], status, target_ms)
        await self.context.record(Recording(delivery, counted, line))
