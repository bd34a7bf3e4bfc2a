"""Accepting messages in batches (services/accept_batcher.py, `sending.accept_many`): what arrives
together is stored together, and each message still gets its own answer."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from provider.db import session_factory
from provider.models import OutboundMessage, OutboundRecipient, Resource, Suppression, Usage
from provider.models.base import utcnow
from provider.models.outbound import QUEUED, SUPPRESSED, TEST
from provider.models.resource import DEPROVISIONED
from provider.outbound.errors import AccountClosed, OutboundQuotaExceeded, SenderNotAllowed
from provider.outbound.outgoing import Outgoing, from_api
from provider.outbound.request import read_request
from provider.plans import plan_named
from provider.services import accept_batcher
from provider.services.accept_batcher import AcceptBatcher
from provider.services.sending import (
    Accepted,
    SendingPolicy,
    Submission,
    accept_many,
    commit_each_statement,
)
from provider.services.usage import month_start
from provider.settings import Settings

from .conftest import SENDING_DOMAIN, Account, new_account

VERIFY = SendingPolicy(verify_sending_domains=True)


def _outgoing(n: int, *, sender_domain: str = SENDING_DOMAIN, to: str | None = None,
              test_mode: bool = False) -> tuple[Outgoing, uuid.UUID]:
    message_id = uuid.uuid4()
    body = {"from": f"Shop <orders@{sender_domain}>", "to": to or f"buyer{n}@example.com",
            "subject": f"Order {n}", "plain": f"Thanks for order {n}.", "test_mode": test_mode}
    return from_api(read_request(body), str(message_id)), message_id


def _submission(account: Account, n: int, **kwargs: object) -> Submission:
    outgoing, message_id = _outgoing(n, **kwargs)  # type: ignore[arg-type]
    return Submission(account.resource_id, outgoing, message_id)


def _accept(settings: Settings, submissions: list[Submission], policy: SendingPolicy = VERIFY,
            woken: list[OutboundMessage] | None = None) -> list[OutboundMessage | Exception]:
    with session_factory(settings.database_url)() as session:
        commit_each_statement(session)
        results = accept_many(session, policy, submissions,
                              wake=lambda _, message: (woken if woken is not None else []).append(message))
        session.commit()
        return results


def _stored(db_session: Session) -> dict[uuid.UUID, list[tuple[str, str]]]:
    db_session.expire_all()
    rows = db_session.execute(select(OutboundRecipient.message_id, OutboundRecipient.address,
                                     OutboundRecipient.state).order_by(OutboundRecipient.id)).all()
    found: dict[uuid.UUID, list[tuple[str, str]]] = {}
    for message_id, address, state in rows:
        found.setdefault(message_id, []).append((address, state))
    return found


def test_each_message_of_a_batch_is_stored_with_its_own_recipients_and_fields(
    account: Account, db_session: Session, settings: Settings
) -> None:
    batch = [_submission(account, n) for n in range(5)]
    results = _accept(settings, batch)
    assert [r.id for r in results if isinstance(r, Accepted)] == [s.message_id for s in batch]
    stored = _stored(db_session)
    assert stored == {s.message_id: [(f"buyer{n}@example.com", QUEUED)] for n, s in enumerate(batch)}
    for n, submission in enumerate(batch):
        message = db_session.get(OutboundMessage, submission.message_id)
        assert message is not None
        assert (message.subject, message.to, message.raw) == (
            f"Order {n}", [f"buyer{n}@example.com"], submission.outgoing.raw)


def test_a_refused_message_leaves_the_rest_of_its_batch_stored(
    account: Account, db_session: Session, settings: Settings
) -> None:
    closed = new_account(db_session, settings, domain=None)
    db_session.execute(update(Resource).where(Resource.id == closed.resource_id).values(state=DEPROVISIONED))
    db_session.commit()
    good, foreign, gone, also_good = (
        _submission(account, 0), _submission(account, 1, sender_domain="elsewhere.example"),
        _submission(closed, 2), _submission(account, 3),
    )
    results = _accept(settings, [good, foreign, gone, also_good])
    assert isinstance(results[0], Accepted) and isinstance(results[3], Accepted)
    assert isinstance(results[1], SenderNotAllowed) and isinstance(results[2], AccountClosed)
    assert set(_stored(db_session)) == {good.message_id, also_good.message_id}
    assert _counted(db_session, account) == 2  # the refused one was counted with the batch, then given back
    assert _counted(db_session, closed) is None


def _counted(db_session: Session, account: Account) -> int | None:
    db_session.expire_all()
    return db_session.scalar(select(Usage.outbound).where(Usage.resource_id == account.resource_id))


def test_the_test_plan_stores_every_message_as_test_and_counts_none(
    db_session: Session, settings: Settings
) -> None:
    tester = new_account(db_session, settings, plan="test")
    batch = [_submission(tester, n) for n in range(2)]
    _accept(settings, batch)
    expected = {s.message_id: [(f"buyer{n}@example.com", TEST)] for n, s in enumerate(batch)}
    assert _stored(db_session) == expected
    assert _counted(db_session, tester) is None


def test_suppressed_and_test_mode_recipients_are_decided_per_message_and_per_account(
    account: Account, db_session: Session, settings: Settings
) -> None:
    other = new_account(db_session, settings, domain="other.example")
    db_session.add(Suppression(resource_id=account.resource_id, address="buyer0@example.com",
                               reason="550 5.1.1 No such user"))
    db_session.commit()
    mine, theirs, tested = (_submission(account, 0), _submission(other, 0, sender_domain="other.example"),
                            _submission(account, 1, test_mode=True))
    woken: list[OutboundMessage] = []
    _accept(settings, [mine, theirs, tested], woken=woken)
    stored = _stored(db_session)
    assert stored[mine.message_id] == [("buyer0@example.com", SUPPRESSED)]
    assert stored[theirs.message_id] == [("buyer0@example.com", QUEUED)]  # another account's list
    assert stored[tested.message_id] == [("buyer1@example.com", TEST)]
    assert [message.id for message in woken] == [theirs.message_id]  # only a queued one wakes delivery


def test_a_batch_beyond_the_monthly_count_stores_what_fits_and_refuses_the_rest(
    account: Account, db_session: Session, settings: Settings
) -> None:
    limit = plan_named("starter").outbound_per_month
    db_session.add(Usage(resource_id=account.resource_id, period=month_start(utcnow()), inbound=0,
                         outbound=limit - 2))
    db_session.commit()
    batch = [_submission(account, n) for n in range(4)]
    results = _accept(settings, batch)
    assert [type(r) for r in results] == [Accepted, Accepted,
                                          OutboundQuotaExceeded, OutboundQuotaExceeded]
    assert set(_stored(db_session)) == {batch[0].message_id, batch[1].message_id}
    db_session.expire_all()
    usage = db_session.scalar(select(Usage.outbound).where(Usage.resource_id == account.resource_id))
    assert usage == limit


def test_a_batch_takes_its_whole_count_at_once_and_test_mode_takes_none(
    account: Account, db_session: Session, settings: Settings
) -> None:
    _accept(settings, [_submission(account, 0), _submission(account, 1, test_mode=True),
                       _submission(account, 2)])
    db_session.expire_all()
    assert db_session.scalar(select(Usage.outbound).where(Usage.resource_id == account.resource_id)) == 2


def test_a_message_whose_rows_postgresql_refuses_is_refused_alone(
    account: Account, db_session: Session, settings: Settings
) -> None:
    """A constraint failing takes the batch's statement with it: each is then stored alone."""
    first, second = _submission(account, 0), _submission(account, 1)
    duplicate = Submission(account.resource_id, _outgoing(2)[0], first.message_id)  # same id as `first`
    results = _accept(settings, [first, duplicate, second])
    assert isinstance(results[0], Accepted) and isinstance(results[2], Accepted)
    assert isinstance(results[1], IntegrityError)
    assert set(_stored(db_session)) == {first.message_id, second.message_id}


class _HeldSessions:
    """The batcher's session factory, whose first session waits until released, counting the
    batches (one session each)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.release = threading.Event()
        self.opened = 0
        self.first_open = threading.Event()

    def __call__(self) -> Session:
        self.opened += 1
        if self.opened == 1:
            self.first_open.set()
            assert self.release.wait(10)
        return self.sessions()


@pytest.fixture
def held(settings: Settings) -> Iterator[_HeldSessions]:
    held = _HeldSessions(session_factory(settings.database_url))
    yield held
    held.release.set()


def _holding_its_first_batch(
    held: _HeldSessions, account: Account, monkeypatch: pytest.MonkeyPatch, *, threads: int = 1
) -> tuple[AcceptBatcher, Future[Accepted]]:
    """A batcher of `threads` threads whose first batch (one message, whose future is returned)
    waits in its session until `held.release` is set."""
    monkeypatch.setattr(accept_batcher, "THREADS", threads)
    batcher = AcceptBatcher(held, VERIFY, lambda session, message: None)
    first = batcher.submit(_submission(account, 0))
    assert held.first_open.wait(10)
    return batcher, first


def test_messages_arriving_while_a_batch_is_stored_are_stored_together_in_the_next(
    account: Account, db_session: Session, settings: Settings, held: _HeldSessions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batcher, first = _holding_its_first_batch(held, account, monkeypatch)
    waiting = [batcher.submit(_submission(account, n)) for n in range(1, 6)]
    held.release.set()
    messages = [future.result(10) for future in [first, *waiting]]
    assert held.opened == 2  # two batches: the first message, then the five that waited
    assert set(_stored(db_session)) == {message.id for message in messages}


def test_a_batch_after_a_batch_of_several_waits_for_the_messages_arriving_within_its_linger(
    account: Account, db_session: Session, settings: Settings, held: _HeldSessions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(accept_batcher, "LINGER_SECONDS", 0.5)
    batcher, first = _holding_its_first_batch(held, account, monkeypatch)
    several = [batcher.submit(_submission(account, n)) for n in (1, 2)]
    held.release.set()
    for future in [first, *several]:
        future.result(10)
    assert held.opened == 2  # a batch of one, then one of two (after a batch of one: no waiting)
    lingering = batcher.submit(_submission(account, 3))
    time.sleep(0.1)  # well inside the linger of the batch that follows a batch of two
    late = batcher.submit(_submission(account, 4))
    assert {lingering.result(10).id, late.result(10).id} <= set(_stored(db_session))
    assert held.opened == 3  # both in one batch


def test_a_message_that_follows_a_batch_of_one_goes_without_waiting(
    account: Account, db_session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accept_batcher, "LINGER_SECONDS", 60.0)
    batcher = AcceptBatcher(session_factory(settings.database_url), VERIFY, lambda session, message: None)
    first = batcher.submit(_submission(account, 0)).result(10)
    second = batcher.submit(_submission(account, 1)).result(10)  # would wait 60 s if it lingered
    assert set(_stored(db_session)) == {first.id, second.id}


def test_with_two_threads_a_second_batch_runs_beside_one_that_waits(
    account: Account, db_session: Session, settings: Settings, held: _HeldSessions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batcher, blocked = _holding_its_first_batch(held, account, monkeypatch, threads=2)
    beside = batcher.submit(_submission(account, 1)).result(10)  # while the first batch is held
    assert not blocked.done()
    held.release.set()
    assert {blocked.result(10).id, beside.id} == set(_stored(db_session))


def test_a_refusal_resolves_only_its_own_future(
    account: Account, db_session: Session, settings: Settings
) -> None:
    batcher = AcceptBatcher(session_factory(settings.database_url), VERIFY, lambda session, message: None)
    refused = batcher.submit(_submission(account, 0, sender_domain="elsewhere.example"))
    accepted = batcher.submit(_submission(account, 1))
    with pytest.raises(SenderNotAllowed):
        refused.result(10)
    assert accepted.result(10).id in _stored(db_session)


def test_when_postgresql_cannot_be_reached_every_future_of_the_batch_gets_the_error(
    account: Account, settings: Settings
) -> None:
    unreachable = session_factory("postgresql://nobody@127.0.0.1:1/none")
    batcher = AcceptBatcher(unreachable, VERIFY, lambda session, message: None)
    futures: list[Future[Accepted]] = [batcher.submit(_submission(account, n)) for n in range(3)]
    for future in futures:
        error = future.exception(30)
        assert error is not None and "127.0.0.1" in str(error)


def test_an_idle_batcher_holds_no_thread_and_starts_one_for_the_next_message(
    account: Account, db_session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accept_batcher, "IDLE_SECONDS", 0.05)
    batcher = AcceptBatcher(session_factory(settings.database_url), VERIFY, lambda session, message: None)
    before = set(threading.enumerate())  # other tests' batchers may still be waiting out their idle time
    first = batcher.submit(_submission(account, 0)).result(10)

    def batcher_threads() -> int:
        return sum(1 for thread in set(threading.enumerate()) - before if thread.name == "accept-batcher")

    deadline = time.monotonic() + 5
    while batcher_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert batcher_threads() == 0
    second = batcher.submit(_submission(account, 1)).result(10)
    assert set(_stored(db_session)) == {first.id, second.id}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # SystemExit re-raised
def test_a_batcher_thread_ended_by_force_answers_its_batch_and_the_next_message_gets_a_thread(
    account: Account, db_session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = session_factory(settings.database_url)
    calls = []

    def ended_once() -> Session:
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit("killed")  # what ends a thread (a greenlet killed at shutdown), not an error
        return sessions()

    batcher = AcceptBatcher(ended_once, VERIFY, lambda session, message: None)
    with pytest.raises(RuntimeError, match="killed"):
        batcher.submit(_submission(account, 0)).result(10)
    after = batcher.submit(_submission(account, 1)).result(10)
    assert set(_stored(db_session)) == {after.id}
