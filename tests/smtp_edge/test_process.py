"""`python -m smtp_edge` as the Procfile runs it: serves mail, and SIGTERM stops it gracefully."""

from __future__ import annotations

import re
import signal
import smtplib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from provider.settings import Settings
from tests.conftest import REPO_ROOT

from .conftest import SENDER, Conversation, Mailbox, Target, message


@pytest.fixture
def edge_process(edge_settings: Settings) -> Iterator[tuple[subprocess.Popen[str], int]]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": edge_settings.database_url,
        "REDIS_URL": edge_settings.redis_url,
        "ENCRYPTION_KEY": edge_settings.encryption_key,
        "INBOUND_DOMAIN": edge_settings.inbound_domain,
        "SMTP_BIND_HOST": "127.0.0.1",
        "SMTP_MX_PORT": "0",
        "SMTP_SUBMISSION_PORT": "0",
        "SMTP_HOSTNAME": "mx.cloudmailin.test",
        "SMTP_DATA_DIR": edge_settings.smtp_data_dir,
        "DNS_NAMESERVERS": edge_settings.dns_nameservers,
        "LOG_LEVEL": "INFO",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "smtp_edge"],
        cwd=REPO_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    port = 0
    for line in process.stderr:
        if found := re.search(r"MX listener on 127\.0\.0\.1:(\d+)", line):
            port = int(found.group(1))
            break
    assert port, "the edge exited before listening"
    # Keep reading its log so a full pipe never blocks the process.
    drain = threading.Thread(target=process.stderr.read, daemon=True)
    drain.start()
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        drain.join(30)
        process.stderr.close()


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
