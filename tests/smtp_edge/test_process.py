"""`python -m smtp_edge` as the Procfile runs it: serves mail, and SIGTERM stops it gracefully."""

from __future__ import annotations

import signal
import smtplib
import subprocess
from collections.abc import Callable, Iterator

import pytest

from provider.settings import Settings

from .conftest import SENDER, Conversation, Mailbox, Target, message, running_edge


@pytest.fixture
def edge_process(edge_settings: Settings) -> Iterator[tuple[subprocess.Popen[str], int]]:
    with running_edge(edge_settings) as started:
        yield started


def test_the_module_serves_mail_and_stops_on_sigterm_saying_421_to_idle_clients(
    edge_process: tuple[subprocess.Popen[str], int],
    target: Target,
    mailbox: Callable[..., Mailbox],
) -> None:
    process, port = edge_process
    box = mailbox("/status/201")
    with smtplib.SMTP("127.0.0.1", port) as client:
        assert client.sendmail(SENDER, [box.address], message()) == {}
    assert len(target.requests) == 1
    idle = Conversation(port)
    idle.command("EHLO client.example")
    process.send_signal(signal.SIGTERM)
    assert idle.reply() == ["421 4.3.2 Service shutting down; try again later"]
    assert process.wait(30) == 0
