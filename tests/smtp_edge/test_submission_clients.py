"""Real sending clients against the submission port, each configured from CLOUDMAILIN_SMTP_URL the
way an app would be: swaks (`make test` unpacks it), nodemailer (pinned in tests/npm) and Ruby's
`mail` gem (bin/fetch-ruby-mail), as CloudMailin's Rails initializer sets it up. Each message must
be stored with the RCPT TOs as its recipients (Bcc by envelope only), the class and tags headers
honoured and removed, under the id the 250 names."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from provider.services.credentials import IssuedCredential, smtp_url
from provider.settings import Settings
from tests.cli import NPM_DIR, ensure_npm_tools
from tests.outbound.conftest import new_account
from tests.tools import SWAKS, swaks_env

from .conftest import EdgeThread
from .submitting import SENDING_DOMAIN, Account, queued_id, stored, stored_count

SENDERS = Path(__file__).resolve().parent / "senders"
TIMEOUT = 60
FROM = f"orders@{SENDING_DOMAIN}"


@pytest.fixture
def account(db_session: Session, settings: Settings) -> Account:
    return new_account(db_session, settings)


def cloudmailin_smtp_url(edge: EdgeThread, account: Account) -> str:
    """The URL the add-on hands the app (config var CLOUDMAILIN_SMTP_URL), for this edge's port."""
    settings = dataclasses.replace(edge.settings, smtp_public_port=edge.submission_port)
    return smtp_url(settings, IssuedCredential(account.username, account.key))


def head(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode().lower()


# --- swaks --------------------------------------------------------------------------------------


def swaks(edge: EdgeThread, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SWAKS), "--server", f"127.0.0.1:{edge.submission_port}", "--helo", "app.example",
         "--from", FROM, "--to", "ann@example.com", *args],
        env=swaks_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip


def test_swaks_without_starttls_is_refused_at_mail(edge: EdgeThread, db_session: Session) -> None:
    done = swaks(edge)
    assert done.returncode != 0
    assert "<** 530 Must issue a STARTTLS command first" in done.stdout
    assert stored_count(db_session) == 0


def test_swaks_with_tls_but_without_auth_is_refused_so_there_is_no_open_relay(
    edge: EdgeThread, db_session: Session
) -> None:
    done = swaks(edge, "--tls")
    assert done.returncode != 0
    assert "<~* 530 5.7.0 Authentication required" in done.stdout
    assert stored_count(db_session) == 0


def test_swaks_with_a_wrong_key_is_refused(
    edge: EdgeThread, account: Account, db_session: Session
) -> None:
    done = swaks(edge, "--tls", "--auth", "PLAIN", "--auth-user", account.username,
                 "--auth-password", "f" * len(account.key))  # fmt: skip
    assert done.returncode != 0
    assert "<~* 535 5.7.8 Authentication credentials invalid" in done.stdout
    assert stored_count(db_session) == 0


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_sends_with_the_smtp_url_credentials_and_the_message_is_stored(
    edge: EdgeThread, account: Account, db_session: Session, mechanism: str
) -> None:
    done = swaks(
        edge, "--tls", "--auth", mechanism, "--auth-user", account.username,
        "--auth-password", account.key, "--to", "ann@example.com,secret@example.net",
        "--header", "To: ann@example.com", "--header", "Subject: from swaks",
        "--header", "X-CloudMTA-Tags: swaks", "--header", "X-CloudMTA-Class: priority",
        "--body", "Sent by swaks.",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    replies = [line for line in done.stdout.splitlines() if "Queued as" in line]
    assert len(replies) == 1 and replies[0].startswith("<~  250 Thanks! Queued as: "), replies
    message = stored(db_session, queued_id(replies[0]))
    assert [r.address for r in message.recipients] == ["ann@example.com", "secret@example.net"]
    assert (message.subject, message.tags, message.priority) == ("from swaks", ["swaks"], "priority")
    assert "x-cloudmta" not in head(message.raw) and "secret@" not in message.raw.decode()


# --- nodemailer ----------------------------------------------------------------------------------


def test_nodemailer_from_the_smtp_url_sends_and_bcc_goes_by_envelope_only(
    edge: EdgeThread, account: Account, db_session: Session
) -> None:
    ensure_npm_tools()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NODE_PATH": str(NPM_DIR / "node_modules"),
        "CLOUDMAILIN_SMTP_URL": cloudmailin_smtp_url(edge, account),
        "MAIL_FROM": f"Shop <{FROM}>",
        "MAIL_TO": "Ann <ann@example.com>",
        "MAIL_BCC": "audit@example.org",
    }
    done = subprocess.run(
        ["node", str(SENDERS / "nodemailer_send.js")],
        env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["response"].startswith("250 Thanks! Queued as: ")
    message = stored(db_session, queued_id(result["response"]))
    assert [r.address for r in message.recipients] == ["ann@example.com", "audit@example.org"]
    assert (message.subject, message.priority) == ("Sent by nodemailer", "digest")
    assert message.tags == ["nodemailer", "weekly"]
    assert message.to == ["Ann <ann@example.com>"]
    assert "x-cloudmta" not in head(message.raw) and "audit@" not in message.raw.decode()
    assert b'filename=notes.txt' in message.raw


# --- Ruby's mail gem ------------------------------------------------------------------------------


def test_ruby_mail_configured_like_the_rails_initializer_sends(
    edge: EdgeThread, account: Account, db_session: Session
) -> None:
    ruby = shutil.which("ruby")
    assert ruby is not None, "Ruby is missing: run bin/fetch-ruby-mail (make test does)"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "CLOUDMAILIN_SMTP_URL": cloudmailin_smtp_url(edge, account),
        "MAIL_FROM": FROM,
        "MAIL_TO": "ann@example.com",
        "MAIL_BCC": "audit@example.org",
    }
    done = subprocess.run(
        [ruby, str(SENDERS / "ruby_mail_send.rb")],
        env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("250 Thanks! Queued as: "), done.stdout
    message = stored(db_session, queued_id(done.stdout))
    assert [r.address for r in message.recipients] == ["ann@example.com", "audit@example.org"]
    assert (message.subject, message.tags) == ("Sent by the mail gem", ["ruby"])
    assert "x-cloudmta" not in head(message.raw) and "audit@" not in message.raw.decode()
