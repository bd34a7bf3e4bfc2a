"""Group commit for accepting outbound mail: the messages that arrive together are stored together.

Each accepted message used to cost its request three round trips to PostgreSQL (the account's
facts, the quota, the store with its synchronous commit) and one to Redis (the wake-up), each
paid in psycopg's and gevent's CPU by the request and in PostgreSQL's by a statement of its own.
Both doors (the API's views and SMTP submission) now hand a `Submission` to the process's
`AcceptBatcher` and wait for its future; a thread takes whatever is waiting, up to `MAX_BATCH`,
and calls `sending.accept_many` for all of it: the same three statements and one commit for the
whole batch, and one Redis call. While a batch is in PostgreSQL the next one gathers, so under
load batches grow by themselves and an idle process waits for nothing (a lone message is a batch
of one, at once). `THREADS` batches are in flight at most. One is the default: bench/outbound.py
at 20 clients, two gave smaller batches (2 to 3 messages), whose per-batch round trips cost
more web CPU than the overlap saved (1.1 to 1.5 ms a message, against 0.7 to 0.9 with one),
and lower rates end to end.

Each future resolves once its message's statement has committed (synchronously: durable) and
the delivery workers have been woken after it (best effort, as before: a Redis failure there is
logged, and the workers' poller finds the message), so the 202 or `250 Queued` still means
"stored, delivery asked for". A refusal
resolves that message's future with its error and leaves the rest of the batch alone, and an
error of them all (PostgreSQL out of reach) is given to every future of the batch.

Framework-free: threads and `concurrent.futures` only. Under the web's gevent workers the
thread is a greenlet (gevent patches `threading`); the SMTP edge awaits the future with
`asyncio.wrap_future`. (A native thread from gevent's pool was tried for the web, to spare the
batch its turns in the hub's queue: the GIL handoffs made batches slower, and redis-py's gevent
sockets cannot cross threads.)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from sqlalchemy.orm import Session

from ..db import database_unavailable, session_factory
from ..settings import Settings
from .sending import Accepted, SendingPolicy, Submission, Wake, accept_many, commit_each_statement

log = logging.getLogger(__name__)

MAX_BATCH = 64
"""Messages per batch at most: the store of a batch is one statement carrying every message's
bytes (each up to 10 MB), so a bound keeps one batch from holding the next for long."""
THREADS = 1
"""Batches in flight at once, each on a connection of its own (the batcher's pool holds this many)."""
LINGER_SECONDS = 0.002
"""How long a batch that follows a batch of several messages waits for more before it goes (the
group commit's delay, as PostgreSQL's `commit_delay` or a producer's `linger.ms`). A batch costs
its web process about 0.6 ms of CPU whatever its size, and each message 0.03 ms more, so under
load bigger batches are cheaper messages; a message that arrives alone (its batch of one followed
one of one) goes at once. Measured with bench/outbound.py at 20 clients on 2 cores: 2 ms took
batches from about 5 messages to 7 and more, the web's CPU per message from 1.0 ms to 0.8 and
PostgreSQL's from 0.22 to 0.15, and accepting 20% faster; 5 ms made messages cheaper still but
accepting slower (its clients waited on the delay)."""
IDLE_SECONDS = 30.0
"""The thread ends after this long without work and the next message starts a new one, so an
idle process (or each app a test suite creates) holds no thread."""


class AcceptBatcher:
    def __init__(
        self, sessions: Callable[[], Session], policy: SendingPolicy, wake: Wake, *,
        max_batch: int = MAX_BATCH, after_outage: Callable[[], None] | None = None,
    ) -> None:
        """`sessions` should come from a pool of the batcher's own (`THREADS` connections): the
        callers wait for their futures while holding whatever they hold, connections of their
        own pool included."""
        self._sessions = sessions
        self._policy = policy
        self._wake = wake
        self._max_batch = max_batch
        self._after_outage = after_outage
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._waiting: deque[tuple[Submission, Future[Accepted]]] = deque()
        self._running = 0
        self._idle = 0
        """Threads waiting for work: a new message wakes one of them before starting another."""
        self._pid = os.getpid()
        self._last_size = 0
        """The size of the last batch taken: whether the next one lingers."""

    @classmethod
    def for_settings(cls, settings: Settings, wake: Wake) -> AcceptBatcher:
        """The process's batcher (the API's and submission's alike): the sending policy the
        settings choose, and sessions from a pool of `THREADS` connections of its own, emptied
        when PostgreSQL was found out of reach: a batch fails in its first statement, which goes
        to the side pool (`sending_store.read_and_count`), before it uses its pooled connection,
        which would then outlive a restart and fail the first batch after it."""
        sessions = session_factory(settings.database_url, pool_size=THREADS)
        policy = SendingPolicy(verify_sending_domains=settings.sending_domain_verification)
        return cls(sessions, policy, wake, after_outage=sessions.kw["bind"].dispose)

    def submit(self, submission: Submission) -> Future[Accepted]:
        """The future of `submission`'s stored message (or of its refusal)."""
        future: Future[Accepted] = Future()
        with self._lock:
            if self._pid != os.getpid():  # forked (a web worker): the parent's threads are not here
                self._pid, self._running, self._idle = os.getpid(), 0, 0
                self._waiting.clear()
            self._waiting.append((submission, future))
            if self._idle:
                self._arrived.notify()
            elif self._running < THREADS:
                self._running += 1
                threading.Thread(target=self._run, name="accept-batcher", daemon=True).start()
        return future

    def _run(self) -> None:
        batch: list[tuple[Submission, Future[Accepted]]] = []
        try:
            while True:
                with self._lock:
                    if not self._waiting:
                        self._idle += 1
                        self._arrived.wait(IDLE_SECONDS)
                        self._idle -= 1
                    if not self._waiting:
                        self._running -= 1
                        return
                    batch = self._take(self._max_batch)
                    linger = self._last_size > 1 and len(batch) < self._max_batch
                if linger:
                    time.sleep(LINGER_SECONDS)
                    with self._lock:
                        batch += self._take(self._max_batch - len(batch))
                self._last_size = len(batch)
                self._accept(batch)
                batch = []
        except BaseException as error:
            # Not an error of the batch (those resolve its futures): the thread itself is being
            # ended (a greenlet killed at shutdown). Its batch must not wait for ever, and the
            # next message must start a thread of its own.
            for _, future in batch:
                if not future.done():
                    future.set_exception(error if isinstance(error, Exception) else RuntimeError(str(error)))
            with self._lock:
                self._running -= 1
            raise

    def _take(self, most: int) -> list[tuple[Submission, Future[Accepted]]]:
        """Up to `most` of the waiting messages, oldest first (the caller holds the lock)."""
        return [self._waiting.popleft() for _ in range(min(most, len(self._waiting)))]

    def _accept(self, batch: list[tuple[Submission, Future[Accepted]]]) -> None:
        try:
            with self._sessions() as session:
                commit_each_statement(session)
                results = accept_many(session, self._policy, [submission for submission, _ in batch],
                                      wake=self._wake)
                # The statements committed themselves (autocommit): this sends nothing but runs
                # the wake-up hooks, so that a 202 means delivery has been asked for too.
                session.commit()
        except Exception as error:  # every future must resolve, whatever went wrong
            if len(batch) > 1:
                log.info("a batch of %d messages was not accepted: %s", len(batch), error)
            for _, future in batch:
                future.set_exception(error)
            if self._after_outage is not None and database_unavailable(error):
                self._after_outage()
            return
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
