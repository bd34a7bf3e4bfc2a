"""The edge's route cache: a change in the database reaches the very next RCPT, through the real
triggers and LISTEN/NOTIFY of migration 0002; quotas stay enforced from cached routes."""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from provider.db import libpq_url
from provider.models import InboundMessage
from provider.models.resource import DEPROVISIONED
from provider.plans import PLANS
from provider.services.routing import Route
from smtp_edge import routes
from smtp_edge.routes import RouteCache
from tests.usage_counts import count_inbound

from .conftest import SENDER, Conversation, EdgeThread, Mailbox, Target, message, open_transaction


def _cache(edge: EdgeThread) -> RouteCache:
    assert edge.server.context is not None
    return edge.server.context.routes


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _listening(edge: EdgeThread) -> None:
    _wait_for(lambda: _cache(edge).listening, "the route cache to listen")


def _send(edge: EdgeThread, box: Mailbox, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.sendmail(SENDER, [box.address], message(subject))


def _cached(edge: EdgeThread, box: Mailbox) -> bool:
    return box.local_id in _cache(edge)._entries


def _change(db_session: Session, edge: EdgeThread, statement: str, **params: object) -> None:
    """Commit a change and wait until the edge has heard of it (a notice is asynchronous)."""
    before = _cache(edge).generation
    db_session.execute(text(statement), params)
    db_session.commit()
    _wait_for(lambda: _cache(edge).generation > before, "the change notice")


def test_a_new_target_gets_the_next_message_after_the_route_was_cached(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    _listening(edge)
    box = mailbox("/status/201")
    _send(edge, box, "to the first path")
    assert _cached(edge, box)
    _change(db_session, edge, "UPDATE addresses SET target_url = :url WHERE id = :id",
            url=target.url("/status/200"), id=box.address_id)
    assert not _cached(edge, box)
    _send(edge, box, "to the new path")
    assert [request.path for request in target.requests] == ["/status/201", "/status/200"]


def test_a_resource_deprovisioned_after_mail_arrived_refuses_the_next_rcpt(
    edge: EdgeThread, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    _listening(edge)
    box = mailbox()
    _send(edge, box, "while provisioned")
    _change(db_session, edge, "UPDATE resources SET state = :state WHERE id = :id",
            state=DEPROVISIONED, id=box.resource_id)
    smtp = open_transaction(edge.mx_port)
    assert smtp.command(f"RCPT TO:<{box.address}>") == ["550 5.1.1 No such recipient here"]
    smtp.close()


def test_a_plan_change_applies_its_limits_to_the_next_message(
    edge: EdgeThread, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    _listening(edge)
    box = mailbox(plan="starter")
    _send(edge, box, "on starter")
    _change(db_session, edge, "UPDATE resources SET plan = 'free' WHERE id = :id", id=box.resource_id)
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    size = PLANS["free"].max_message_bytes + 1
    assert smtp.command(f"MAIL FROM:<{SENDER}> SIZE={size}") == ["250 2.1.0 OK"]
    assert smtp.command(f"RCPT TO:<{box.address}>")[0].startswith("552 5.3.4")
    smtp.close()


def test_the_quota_holds_for_mail_counted_while_the_route_was_cached(
    edge: EdgeThread, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    _listening(edge)
    box = mailbox(plan="free")
    count_inbound(db_session, box.resource_id, datetime.now(UTC), PLANS["free"].inbound_per_month - 2)
    db_session.commit()
    _send(edge, box, "one before the quota")
    _send(edge, box, "the last one the quota allows")
    assert _cached(edge, box)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(edge, box, "one too many")
    assert refused.value.recipients[box.address][0] == 452
    statuses = sorted(row.status for row in db_session.scalars(select(InboundMessage)))
    assert statuses == ["201", "201", "rejected_quota"]


def test_routes_are_read_again_when_the_listening_connection_is_lost(
    edge: EdgeThread, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    _listening(edge)
    box = mailbox()
    _send(edge, box, "cached")
    assert _cached(edge, box)
    before = _cache(edge).generation
    db_session.execute(
        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
        {"name": routes.APPLICATION_NAME},
    )
    db_session.commit()
    _wait_for(lambda: _cache(edge).generation > before, "the lost connection to be noticed")
    assert not _cached(edge, box)
    _listening(edge)  # and it listens again
    _send(edge, box, "after the reconnect")


# --- The cache on its own -------------------------------------------------------------------------


def _route(resource_id: str = "r1", used: int = 0) -> Route:
    return Route(key="address:1", target_url="http://t/", format="json", resource_id=resource_id,
                 address_id=1, plan=PLANS["free"], inbound_this_month=used)


class _Db:
    """Stands in for `EdgeContext.in_db`: answers from `route`, counting the questions."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.asked = 0
        self.during: Callable[[], object] = lambda: None

    async def __call__(self, *_args: object, **_kwargs: object) -> Route:
        self.asked += 1
        self.during()
        return self.route


ADDRESS = "0123456789abcdef0123@cloudmailin.test"


def _listening_cache(settings, db: _Db, clock: Callable[[], float] = time.monotonic) -> RouteCache:
    cache = RouteCache(settings, db, clock=clock)
    cache.listening = True
    return cache


def test_every_spelling_of_an_address_shares_one_entry(settings) -> None:
    db = _Db(_route())
    cache = _listening_cache(settings, db)
    for recipient in (ADDRESS, "0123456789ABCDEF0123+tag@CloudMailin.Test", ADDRESS):
        asyncio.run(cache.route(recipient))
    assert db.asked == 1


def test_nothing_is_cached_while_not_listening(settings) -> None:
    db = _Db(_route())
    cache = RouteCache(settings, db)
    asyncio.run(cache.route(ADDRESS))
    asyncio.run(cache.route(ADDRESS))
    assert db.asked == 2


def test_a_lookup_that_raced_a_change_notice_is_not_kept(settings) -> None:
    db = _Db(_route())
    cache = _listening_cache(settings, db)
    db.during = lambda: cache.invalidate("address:0123456789abcdef0123")
    asyncio.run(cache.route(ADDRESS))
    db.during = lambda: None
    asyncio.run(cache.route(ADDRESS))
    assert db.asked == 2


def test_a_resource_notice_drops_all_its_addresses_and_only_those(settings) -> None:
    cache = _listening_cache(settings, _Db(_route("r1")))
    asyncio.run(cache.route(ADDRESS))
    other = "ffffffffffffffffffff@cloudmailin.test"
    cache._in_db = _Db(_route("r2"))
    asyncio.run(cache.route(other))
    cache.invalidate("resource:r1")
    assert set(cache._entries) == {"ffffffffffffffffffff"}


def test_entries_are_read_again_after_the_refresh_interval(settings) -> None:
    now = [1000.0]
    db = _Db(_route())
    cache = _listening_cache(settings, db, clock=lambda: now[0])
    asyncio.run(cache.route(ADDRESS))
    now[0] += routes.REFRESH_AFTER - 1
    asyncio.run(cache.route(ADDRESS))
    now[0] += 2
    asyncio.run(cache.route(ADDRESS))
    assert db.asked == 2


def test_delivered_messages_count_in_the_cached_route(settings) -> None:
    cache = _listening_cache(settings, _Db(_route("r1", used=5)))
    asyncio.run(cache.route(ADDRESS))
    cache.counted("r1", 3)
    cache.counted("someone-else", 100)
    assert asyncio.run(cache.route(ADDRESS)).inbound_this_month == 8


def _notices(settings, action: Callable[[], object]) -> list[str]:
    """What a listener hears on the route channel while `action` commits its changes."""
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as listener:
        listener.execute(f"LISTEN {routes.CHANNEL}")
        action()
        return [notice.payload for notice in listener.notifies(timeout=0.5)]


def test_the_triggers_announce_route_changes_and_stay_quiet_otherwise(
    settings, db_session: Session, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox()

    def run(statement: str) -> Callable[[], None]:
        def action() -> None:
            db_session.execute(text(statement), {"id": box.resource_id, "address": box.address_id})
            db_session.commit()
        return action

    quiet = "UPDATE resources SET access_token_enc = 'x', app_name = 'renamed' WHERE id = :id"
    assert _notices(settings, run(quiet)) == []
    assert _notices(settings, run("UPDATE resources SET plan = 'premium' WHERE id = :id")) == [
        f"resource:{box.resource_id}"
    ]
    assert _notices(settings, run("UPDATE addresses SET format = 'raw' WHERE id = :address")) == [
        f"address:{box.local_id}"
    ]
    assert sorted(_notices(settings, run("DELETE FROM resources WHERE id = :id"))) == [
        f"address:{box.local_id}", f"resource:{box.resource_id}"
    ]


def test_a_rolled_back_change_is_never_announced(
    settings, db_session: Session, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox()

    def action() -> None:
        statement = text("UPDATE addresses SET target_url = NULL WHERE id = :id")
        db_session.execute(statement, {"id": box.address_id})
        db_session.rollback()

    assert _notices(settings, action) == []
