"""`resend_message(row_id)`: POST a kept message again, as the SMTP edge would now (services/resend.py).

The web process added the row (`resend_queued`, linked to the first by `resent_from_id`); this job
reads the message back from the address's store with the address's current credentials, builds
the address's current route (`routing.address_route`: target, format, signing secret, store) and
goes through the edge's own code: `smtp_edge.payloads.prepare_post` parses, uploads what the
store takes and renders, `smtp_edge.poster.TargetPoster` POSTs (in a short `asyncio.run`: this
is a plain worker process, not the web's gevent). The row then says what happened, in the words
the edge uses: the HTTP code or `client_timeout`/`unreachable`, `store_error` when the message
cannot be read back, the reply the edge would have given. A re-send is a new delivery: its
X-CloudMailin-Delivery-Id differs from the first's, so a target that drops repeats by that id
does not drop it. It does not count against the monthly quota (the message was counted once).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime

import aiohttp
from sqlalchemy.orm import Session

from provider.crypto import box_for
from provider.errors import DomainError, StoreFailed
from provider.inbound import Envelope
from provider.inbound.delivery_id import delivery_id
from provider.inbound.envelope import SpfResult
from provider.models import Address, InboundMessage
from provider.models.inbound_message import LOCAL_ERROR, RESEND_QUEUED, STORE_ERROR
from provider.services import applog, applog_lines
from provider.services.addresses import display_target
from provider.services.history import RESPONSE_BODY_LIMIT, storable_text
from provider.services.routing import Route, address_route
from provider.services.stores import s3_client, store_error_text
from provider.services.target_answers import smtp_answer
from provider.settings import Settings
from smtp_edge.payloads import PreparedPost, prepare_post
from smtp_edge.poster import PostResult, TargetPoster
from smtp_edge.replies import error_for
from smtp_edge.spf import spf_domain
from smtp_edge.stores import StoreUploads
from workers.context import job_session, job_settings

log = logging.getLogger(__name__)


def resend_message(row_id: int) -> str:
    """Run once per queued row; a row no longer queued (a job run twice) is left as it is."""
    settings = job_settings()
    with job_session(settings) as session:
        row = session.get(InboundMessage, row_id, with_for_update=True)
        if row is None or row.status != RESEND_QUEUED:
            return "nothing to do"
        _resend(session, settings, row)
        # The app's log gets the re-send's delivery line as it gets every delivery's.
        applog.record(session, settings, row.resource_id, applog_lines.inbound(
            row.envelope_from, row.envelope_to, row.status, row.target_ms))
        session.commit()
        return row.status


def _resend(session: Session, settings: Settings, row: InboundMessage) -> None:
    address = session.get(Address, row.address_id) if row.address_id else None
    if address is None or row.stored_message_key is None:
        _failed(row, LOCAL_ERROR, "The address this message was sent to no longer exists.")
        return
    try:
        route = address_route(session, settings, address.local_id, now=row.received_at)
    except DomainError as no_route:
        _failed(row, LOCAL_ERROR, no_route.text, no_route.smtp_reply)
        return
    if route.store is None:
        _failed(row, STORE_ERROR, "The address has no store now (or its plan has none).")
        return
    try:
        raw = _fetch(settings, route, row.stored_message_key)
    except StoreFailed as unread:
        _failed(row, STORE_ERROR, unread.detail, unread.smtp_reply)
        return
    first = session.get(InboundMessage, row.resent_from_id) if row.resent_from_id else None
    try:
        post = _render(settings, route, raw, row, first.received_at if first else row.received_at)
    except Exception as exc:
        error = error_for(exc)
        status = STORE_ERROR if isinstance(error, StoreFailed) else LOCAL_ERROR
        _failed(row, status, getattr(error, "detail", None) or error.text, error.smtp_reply)
        return
    assert route.target_url is not None  # address_route raises NoTarget otherwise
    result = asyncio.run(_post(settings, route.target_url, post))
    row.status = result.status
    row.http_status = result.http_status
    row.response_body = storable_text((result.response_body or "")[:RESPONSE_BODY_LIMIT]) or None
    row.target_ms = result.target_ms
    row.smtp_reply = smtp_answer(result.http_status, result.error)
    row.target_url = display_target(route.target_url)
    row.message_id = storable_text(post.message_id)
    row.subject = storable_text(post.subject)
    row.stored_message_key = post.stored_message_key or row.stored_message_key


def _fetch(settings: Settings, route: Route, key: str) -> bytes:
    import botocore.exceptions

    assert route.store is not None
    config = route.store.decrypted(box_for(settings))
    try:
        client = s3_client(config, settings.store_timeout)
        body: bytes = client.get_object(Bucket=config.bucket, Key=key)["Body"].read()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise StoreFailed(f"The kept message could not be read back: {store_error_text(exc)}") from None
    return body


def _render(
    settings: Settings, route: Route, raw: bytes, row: InboundMessage, first_received_at: datetime
) -> PreparedPost:
    """The edge's `prepare_post` over the envelope the history kept; the first's time, so the
    message store's object name stays the one it has."""
    helo = row.helo_domain or ""
    envelope = Envelope(
        to=row.envelope_to,
        recipients=list(row.recipients),
        mail_from=row.envelope_from,
        helo_domain=helo,
        remote_ip=row.remote_ip or "",
        spf=SpfResult(row.spf_result or "none", spf_domain(row.envelope_from, helo)),
        tls=row.tls,
    )
    stores = StoreUploads(settings)
    try:
        post = prepare_post(settings, route, raw, envelope, stores, first_received_at)
    finally:
        stores.close()
    return replace(post, delivery_id=delivery_id(f"resend:{row.id}", row.recipients, raw))


async def _post(settings: Settings, url: str, post: PreparedPost) -> PostResult:
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
    ) as http:
        poster = TargetPoster(http, timeout=settings.target_timeout)
        return await poster.post(url, post.content_type, post.body, post.signature, post.delivery_id)


def _failed(row: InboundMessage, status: str, detail: str, reply: str | None = None) -> None:
    log.info("re-send of history row %s: %s: %s", row.resent_from_id, status, detail)
    row.status = status
    row.response_body = storable_text(detail[:RESPONSE_BODY_LIMIT])
    row.smtp_reply = reply or ""
