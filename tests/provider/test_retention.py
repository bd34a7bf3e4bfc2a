"""History is kept for the plan's `history_days` and then deleted in bounded batches; the
monthly usage counters stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provider.models import InboundMessage, OutboundMessage, OutboundRecipient, Resource, Usage
from provider.models.resource import PROVISIONED
from provider.services.retention import purge_expired_history
from workers.jobs.sweep import sweep_once

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _resource(db: Session, plan: str) -> str:
    resource = Resource(id=str(uuid.uuid4()), plan=plan, state=PROVISIONED)
    db.add(resource)
    db.flush()
    return resource.id


def _inbound(db: Session, resource_id: str, days_old: float) -> None:
    db.add(InboundMessage(
        resource_id=resource_id, received_at=NOW - timedelta(days=days_old), envelope_to="a@b.example",
        status="200", smtp_reply="250 2.0.0 ok",
    ))


def _outbound(db: Session, resource_id: str, days_old: float, state: str) -> uuid.UUID:
    message = OutboundMessage(
        id=uuid.uuid4(), resource_id=resource_id, created_at=NOW - timedelta(days=days_old), source="api",
        sender="a@shop.example", sender_domain="shop.example", priority="standard", size=1, raw=b"x",
    )
    message.recipients.append(OutboundRecipient(resource_id=resource_id, address="r@example.com",
                                                domain="example.com", state=state))
    db.add(message)
    return message.id


def _count(db: Session, model: type, resource_id: str) -> int:
    db.expire_all()
    query = select(func.count()).select_from(model).where(model.resource_id == resource_id)
    return int(db.scalar(query) or 0)


def test_each_plan_keeps_its_days_of_history_and_the_usage_counters_stay(db_session: Session) -> None:
    free, premium = _resource(db_session, "free"), _resource(db_session, "premium")
    for days in (1, 6.9, 7.1, 30, 89, 91):
        _inbound(db_session, free, days)
        _inbound(db_session, premium, days)
    db_session.add(Usage(resource_id=free, period=NOW.date().replace(day=1), inbound=12, outbound=0))
    db_session.commit()

    deleted = purge_expired_history(db_session, NOW, batch=2)

    assert deleted["inbound"] == 4 + 1  # free keeps 7 days, premium 90
    assert _count(db_session, InboundMessage, free) == 2
    assert _count(db_session, InboundMessage, premium) == 5
    assert db_session.scalar(select(Usage.inbound).where(Usage.resource_id == free)) == 12


def test_old_outbound_messages_go_once_final_but_never_while_still_being_retried(db_session: Session) -> None:
    free = _resource(db_session, "free")
    delivered = _outbound(db_session, free, 8, "delivered")
    deferred = _outbound(db_session, free, 8, "deferred")
    recent = _outbound(db_session, free, 2, "bounced")
    db_session.commit()

    assert purge_expired_history(db_session, NOW)["outbound"] == 1

    db_session.expire_all()
    kept = set(db_session.scalars(select(OutboundMessage.id)))
    assert kept == {deferred, recent} and delivered not in kept
    assert db_session.scalar(select(func.count()).select_from(OutboundRecipient)) == 2


def test_an_unknown_plan_keeps_the_default_plans_days(db_session: Session) -> None:
    legacy = _resource(db_session, "legacy-plan")
    _inbound(db_session, legacy, 6)
    _inbound(db_session, legacy, 8)
    db_session.commit()
    assert purge_expired_history(db_session, NOW)["inbound"] == 1


def test_the_sweep_purges_expired_history(db_session: Session, settings) -> None:
    free = _resource(db_session, "free")
    _inbound(db_session, free, 30)
    db_session.commit()
    counts = sweep_once(db_session, settings, now=NOW)
    assert counts["purged_inbound_history"] == 1
