"""Accepting outbound messages: the account's rules, then one commit, then the wake-up.

Both doors (the JSON API and SMTP submission) hand `Submission`s to an `AcceptBatcher`
(services/accept_batcher.py), which calls `accept_many` for whatever arrived together; tests and
one-off callers use `accept`. It checks what needs the account (still serving, the sender's
domain, the monthly count), stores each message with one row per recipient, and has the delivery
job enqueued after the commit. So a 202 or a `250 Queued` is only ever said of a message
PostgreSQL holds, and a lost job costs a sweep period, never the mail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..db import database_unavailable
from ..models.base import utcnow
from ..models.outbound import QUEUED, SUPPRESSED, TEST
from ..outbound.errors import AccountClosed, OutboundQuotaExceeded, SenderNotAllowed
from ..outbound.limits import PRIORITIES
from ..outbound.outgoing import Outgoing
from ..plans import TEST_PLAN, plan_named
from .sending_store import (
    AccountFacts,
    StoredRow,
    give_back,
    read_and_count,
    store,
    take_from_quota,
)


@dataclass(frozen=True)
class SendingPolicy:
    verify_sending_domains: bool
    """Off in development (`SENDING_DOMAIN_VERIFICATION=off`): any From domain may send."""


def new_message_id() -> uuid.UUID:
    """A random (version 4) UUID, as CloudMailin's clients expect of a message id."""
    return uuid.uuid4()


class SendingAccount(Protocol):
    """Whom a message is sent for: a `Resource`, or the id a cached authentication knows
    (`credentials.CredentialCache`); `accept` reads the account's current facts itself."""

    @property
    def id(self) -> str: ...


@dataclass(frozen=True)
class AccountRef:
    id: str


def _sending_candidates(domain: str) -> list[str]:
    """`domain` and each parent of it but the top-level one: a verified sending domain of the
    resource may send as any of its subdomains."""
    labels = domain.lower().split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def commit_each_statement(session: Session) -> None:
    """Have `session`'s statements commit one by one (autocommit), when nothing has run in it yet.

    What `accept_many` writes is one statement (`sending_store.STORE`) and what it reads before
    needs no snapshot of its own, so a transaction around them only added two round trips (BEGIN
    and COMMIT) to each batch. The store's own commit is synchronous: durable when it returns. The
    caller still calls `session.commit()`, which sends nothing then but runs the after-commit
    hooks (the delivery job). A session already in a transaction keeps it (the same result, slower).
    """
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


@dataclass(frozen=True)
class Submission:
    """One message to accept, for one account."""

    account_id: str
    outgoing: Outgoing
    message_id: uuid.UUID


@dataclass(frozen=True)
class Accepted:
    """A message as it was stored, with what its sender is answered (the API echoes these fields).

    Not the `OutboundMessage` model: the rows are written by one statement for the whole batch
    (`sending_store.STORE`), and building a mapped instance per message only for its fields cost
    more CPU than all of `_decide`'s rules."""

    id: uuid.UUID
    resource_id: str
    sender: str
    to: list[str]
    cc: list[str]
    subject: str | None
    tags: list[str]
    priority: str
    test_mode: bool


Wake = Callable[[Session, Accepted], None]


def accept(
    session: Session,
    policy: SendingPolicy,
    account: SendingAccount,
    outgoing: Outgoing,
    message_id: uuid.UUID,
    *,
    wake: Wake,
    now: datetime | None = None,
) -> Accepted:
    """`accept_many` for one message: its stored message, or its refusal raised."""
    submission = Submission(account.id, outgoing, message_id)
    result = accept_many(session, policy, [submission], wake=wake, now=now)[0]
    if isinstance(result, Exception):
        raise result
    return result


def accept_many(
    session: Session,
    policy: SendingPolicy,
    submissions: Sequence[Submission],
    *,
    wake: Wake,
    now: datetime | None = None,
) -> list[Accepted | Exception]:
    """Store each of `submissions` for delivery, or say why not; the caller commits (see also
    `commit_each_statement`). One answer per submission, in order: the stored message or its
    refusal (AccountClosed when the account no longer serves, SenderNotAllowed,
    OutboundQuotaExceeded; a database error that concerned that message alone). An error that
    concerns them all (PostgreSQL out of reach) is raised.

    Query the stored rows (`OutboundMessage`) for more than an `Accepted` holds.
    `wake(session, message)` is how the caller has delivery started after its commit (the
    worker's job, enqueued by the edge that owns the queue).
    """
    now = now or utcnow()
    asked: dict[str, int] = {}
    for submission in submissions:
        asked[submission.account_id] = asked.get(submission.account_id, 0) + (
            0 if submission.outgoing.test_mode else 1)
    accounts = read_and_count(
        session,
        asked,
        (address for submission in submissions for address in submission.outgoing.recipients),
        (domain for submission in submissions
         for domain in _sending_candidates(submission.outgoing.sender_domain)),
        now,
    )
    decided: list[_Decided | Exception] = [
        _decide(policy, accounts.get(submission.account_id), submission) for submission in submissions
    ]
    _settle_counts(session, accounts, asked, submissions, decided, now)
    stored = [n for n, found in enumerate(decided) if isinstance(found, _Decided)]
    rows = [_row(decided[n], submissions[n]) for n in stored]  # type: ignore[arg-type]
    try:
        store(session, rows, now)
    except DBAPIError as error:
        if database_unavailable(error) or len(rows) == 1:
            raise
        # One message's rows were refused (a constraint: its account purged meanwhile) and took
        # the batch's transaction with it: each alone, so only that one is refused.
        session.rollback()
        for n, row in zip(stored, rows, strict=True):
            try:
                store(session, [row], now)
                session.commit()
            except DBAPIError as alone:
                if database_unavailable(alone):
                    raise
                session.rollback()
                decided[n] = alone
    results: list[Accepted | Exception] = []
    for found in decided:
        if isinstance(found, _Decided):
            if QUEUED in found.states:
                wake(session, found.message)
            results.append(found.message)
        else:
            results.append(found)
    return results


@dataclass(frozen=True)
class _Decided:
    """A message that passed the account's checks, with each recipient's first state."""

    message: Accepted
    states: list[str]
    replies: list[str | None]


def _decide(
    policy: SendingPolicy, facts: AccountFacts | None, submission: Submission
) -> _Decided | Exception:
    """The message as it will be stored, or why it is refused before anything is taken."""
    if facts is None or not facts.active:
        return AccountClosed()
    outgoing = submission.outgoing
    test_mode = outgoing.test_mode or facts.plan == TEST_PLAN
    may_send = not facts.verified_domains.isdisjoint(_sending_candidates(outgoing.sender_domain))
    if policy.verify_sending_domains and not test_mode and not may_send:
        return SenderNotAllowed(outgoing.sender_domain)
    message = Accepted(
        id=submission.message_id,
        resource_id=submission.account_id,
        sender=outgoing.sender,
        to=list(outgoing.to),
        cc=list(outgoing.cc),
        subject=outgoing.subject,
        tags=list(outgoing.tags),
        priority=outgoing.priority,
        test_mode=test_mode,
    )
    states: list[str] = []
    replies: list[str | None] = []
    for address in outgoing.recipients:
        if test_mode:
            state, reply = TEST, "Test mode: validated and recorded, not delivered"
        elif address.lower() in facts.suppressed:
            state, reply = SUPPRESSED, "On the suppression list after a hard bounce; not attempted"
        else:
            state, reply = QUEUED, None
        states.append(state)
        replies.append(reply)
    return _Decided(message, states, replies)


def _settle_counts(
    session: Session,
    accounts: dict[str, AccountFacts],
    asked: dict[str, int],
    submissions: Sequence[Submission],
    decided: list[_Decided | Exception],
    now: datetime,
) -> None:
    """Make each account's count of the month match its messages to store (all but test ones).

    `read_and_count` took what was asked (the messages not in test mode) when all of it fit:
    what was refused since is given back. When it did not fit, the messages are taken one at a
    time and those beyond the plan's limit refused (OutboundQuotaExceeded). Before the store: a
    refused message must not be stored. A message whose store then fails (PostgreSQL lost in
    between) has cost its account one from the count."""
    counted: dict[str, list[int]] = {}
    for n, found in enumerate(decided):
        if isinstance(found, _Decided) and not found.message.test_mode:
            counted.setdefault(submissions[n].account_id, []).append(n)
    for account_id, facts in accounts.items():
        indexes = counted.get(account_id, [])
        if facts.counted:
            if asked[account_id] > len(indexes):
                give_back(session, account_id, asked[account_id] - len(indexes), now)
            continue
        if not indexes:
            continue
        plan = plan_named(facts.plan)
        limit = plan.outbound_per_month
        for position in range(len(indexes)):
            if not take_from_quota(session, account_id, 1, limit, now):
                for refused in indexes[position:]:
                    decided[refused] = OutboundQuotaExceeded(plan.name, limit)
                break


def _row(decided: _Decided, submission: Submission) -> StoredRow:
    outgoing = submission.outgoing
    message = decided.message
    return StoredRow(
        id=message.id, resource_id=message.resource_id, source=outgoing.source, sender=outgoing.sender,
        sender_domain=outgoing.sender_domain, to=message.to, cc=message.cc, subject=outgoing.subject,
        message_id_header=outgoing.message_id_header, tags=message.tags, priority=outgoing.priority,
        rank=PRIORITIES.index(outgoing.priority), test_mode=message.test_mode, raw=outgoing.raw,
        recipients=list(outgoing.recipients), states=decided.states, replies=decided.replies,
    )
