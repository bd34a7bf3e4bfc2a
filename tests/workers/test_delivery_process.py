"""The Procfile's `delivery` process, run for real: it delivers what the API accepted, heals a
flushed Redis by itself, survives `kill -9` mid-delivery without sending twice, and stops warm."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.models import OutboundRecipient
from provider.settings import Settings
from tests.dnsserver import DnsServer
from tests.outbound.conftest import SENDING_DOMAIN, Account, new_account
from tests.test_procfile import _env, _start, procfile

from .mx_servers import MxState, mx_servers

ZONE = {"example.com": {"MX": ["10 mx1.example.com"]}, "mx1.example.com": {"A": ["127.0.0.2"]}}


@dataclasses.dataclass
class Sending:
    settings: Settings
    account: Account
    mx: MxState
    env: dict[str, str]
    db: Session
    processes: list[subprocess.Popen[str]]

    def start_worker(self, **extra: str) -> subprocess.Popen[str]:
        worker = _start(procfile()["delivery"], {**self.env, **extra})
        self.processes.append(worker)
        return worker

    def states(self, message_id: str) -> dict[str, tuple[str, int]]:
        self.db.expire_all()
        rows = self.db.scalars(
            select(OutboundRecipient).where(OutboundRecipient.message_id == uuid.UUID(message_id))
        )
        return {row.address: (row.state, row.attempts) for row in rows}


def _wait(what: str, done: Callable[[], bool], worker: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if worker.poll() is not None:
            output = worker.stdout.read() if worker.stdout else ""
            raise AssertionError(f"the worker exited before {what}:\n{output}")
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


@pytest.fixture
def sending(db_session: Session, migrated: Settings) -> Iterator[Sending]:
    account = new_account(db_session, migrated)
    processes: list[subprocess.Popen[str]] = []
    with DnsServer(ZONE) as dns, mx_servers("127.0.0.2") as (state, port):
        env = _env(
            migrated,
            DNS_NAMESERVERS=dns.nameservers,
            OUTBOUND_MX_PORT=str(port),
            BOUNCE_DOMAIN="bounces.cloudmailin.test",
            OUTBOUND_COMMAND_TIMEOUT="20",
        )
        try:
            yield Sending(migrated, account, state, env, db_session, processes)
        finally:
            state.release.set()
            for process in processes:
                if process.poll() is None:
                    process.kill()
                process.communicate(timeout=30)


def _send(client: FlaskClient, account: Account, to: str) -> str:
    response = client.post(
        account.path(), headers=account.auth,
        json={"from": f"orders@{SENDING_DOMAIN}", "to": to, "subject": "Hi", "plain": "Hello"},
    )
    assert response.status_code == 202, response.json
    return str(response.json["id"])


def test_the_delivery_process_delivers_what_the_api_accepted(client: FlaskClient, sending: Sending) -> None:
    worker = sending.start_worker()
    message_id = _send(client, sending.account, "ann@example.com")
    def delivered() -> bool:
        return sending.states(message_id) == {"ann@example.com": ("delivered", 1)}

    _wait("the message is delivered", delivered, worker, 60)
    assert [r.rcpt_tos for r in sending.mx.received] == [["ann@example.com"]]


def test_messages_whose_jobs_a_flushall_lost_are_still_delivered(
    client: FlaskClient, sending: Sending, redis: Redis
) -> None:
    ids = [_send(client, sending.account, f"r{i}@example.com") for i in range(3)]
    redis.flushall()  # their delivery jobs are gone before any worker ran
    worker = sending.start_worker()
    _wait("the lost messages are delivered",
          lambda: all(s == ("delivered", 1) for i in ids for s in sending.states(i).values()), worker, 60)
    assert sorted(r.rcpt_tos[0] for r in sending.mx.received) == [f"r{i}@example.com" for i in range(3)]


def test_a_worker_killed_mid_delivery_leaves_the_message_to_the_next_one_which_sends_it_once(
    client: FlaskClient, sending: Sending
) -> None:
    first = sending.start_worker(OUTBOUND_LEASE_SECONDS="3")
    message_id = _send(client, sending.account, "hang-once-ann@example.com")
    _wait("the MX holds the first DATA", lambda: sending.mx.hanging == 1, first, 60)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    sending.mx.release.set()  # the first attempt ends on the receiving side without a 250
    second = sending.start_worker(OUTBOUND_LEASE_SECONDS="3")
    _wait("the next worker delivers it once its lease ran out",
          lambda: sending.states(message_id) == {"hang-once-ann@example.com": ("delivered", 2)}, second, 60)
    assert [r.rcpt_tos for r in sending.mx.received] == [["hang-once-ann@example.com"]]


def test_sigterm_lets_the_delivery_in_hand_finish(client: FlaskClient, sending: Sending) -> None:
    worker = sending.start_worker()
    message_id = _send(client, sending.account, "hang-once-bo@example.com")
    _wait("the MX holds the DATA", lambda: sending.mx.hanging == 1, worker, 60)
    worker.send_signal(signal.SIGTERM)  # Heroku's dyno stop
    time.sleep(0.5)
    assert worker.poll() is None, "the worker left a delivery in hand"
    sending.mx.release.set()
    worker.communicate(timeout=60)
    assert worker.returncode == 0
    assert sending.states(message_id) == {"hang-once-bo@example.com": ("deferred", 1)}
