"""Real SMTP clients against the MX: swaks and Postfix's smtp-source (`make test` unpacks them)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.crypto import SecretBox
from provider.models import AppLogLine, InboundMessage, Resource
from provider.settings import Settings
from tests.tools import SMTP_SOURCE, SWAKS, smtp_source_env

from .conftest import SENDER, EdgeThread, Mailbox, Target


def test_swaks_delivers_and_sees_the_targets_verdict(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/201")
    done = subprocess.run(
        [
            str(SWAKS),
            "--server",
            f"127.0.0.1:{edge.mx_port}",
            "--helo",
            "swaks.example",
            "--from",
            SENDER,
            "--to",
            box.address,
            "--header",
            "Subject: from swaks",
            "--body",
            "Sent by swaks.",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "<-  250 2.0.0 Message accepted by the target (HTTP 201)" in done.stdout
    payload = json.loads(target.requests[0].body)
    assert payload["headers"]["subject"] == "from swaks"
    assert payload["plain"].strip() == "Sent by swaks."
    assert payload["envelope"]["helo_domain"] == "swaks.example"


def test_smtp_source_sessions_in_parallel_are_each_delivered_and_recorded(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/200", plan="starter")
    done = subprocess.run(
        [
            str(SMTP_SOURCE),
            "-s",
            "5",  # five sessions at once
            "-m",
            "20",  # twenty messages in all
            "-l",
            "2048",
            "-f",
            SENDER,
            "-t",
            box.address,
            f"127.0.0.1:{edge.mx_port}",
        ],
        env=smtp_source_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(target.requests) == 20
    statuses = db_session.scalars(select(InboundMessage.status)).all()
    assert statuses == ["200"] * 20


def test_each_delivery_adds_a_line_to_the_apps_log(
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    db_session: Session,
    settings: Settings,
) -> None:
    box = mailbox("/status/201")
    resource = db_session.get(Resource, box.resource_id)
    assert resource is not None
    resource.log_input_url_enc = SecretBox(settings.encryption_key).encrypt(
        "http://token:secret@127.0.0.1:9/logs"
    )
    db_session.commit()
    done = subprocess.run(
        [
            str(SWAKS),
            "--server",
            f"127.0.0.1:{edge.mx_port}",
            "--from",
            SENDER,
            "--to",
            box.address,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    db_session.expire_all()
    (line,) = db_session.scalars(select(AppLogLine.message)).all()
    assert re.fullmatch(
        rf"cloudmailin: inbound from={re.escape(SENDER)} to={re.escape(box.address)} "
        r"status=201 in \d+ms",
        line,
    )
