"""The MX's connections: TLS, AUTH, pipelining, the session cap, timeouts, hang-ups, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provider.models import InboundMessage
from smtp_edge.tls import ensure_self_signed

from .conftest import (
    SENDER,
    Conversation,
    EdgeThread,
    Mailbox,
    Target,
    message,
    open_transaction,
    talk,
)

EHLO_AFTER_TLS = [
    "250-mx.cloudmailin.test",
    "250-SIZE 41943040",
    "250-8BITMIME",
    "250-PIPELINING",
    "250-SMTPUTF8",
    "250 HELP",
]


def no_verify() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def history_count(db_session: Session) -> int:
    db_session.expire_all()
    return int(db_session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def test_starttls_with_the_self_signed_certificate_and_the_payload_says_tls(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/200")
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.ehlo("client.example")
        assert client.has_extn("starttls")
        client.starttls(context=no_verify())
        client.ehlo("client.example")
        assert not client.has_extn("starttls") and not client.has_extn("auth")
        assert client.sendmail(SENDER, [box.address], message()) == {}
    envelope = json.loads(target.requests[0].body)["envelope"]
    assert envelope["tls"] is True
    assert envelope["tls_cipher"] == "TLSv1.3"  # the protocol, as CloudMailin fills the field
    db_session.expire_all()
    assert db_session.scalars(select(InboundMessage.tls)).one() is True


def test_tls_cipher_names_the_negotiated_protocol_version(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    context = no_verify()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.starttls(context=context)
        assert client.sendmail(SENDER, [box.address], message()) == {}
        assert client.sock.version() == "TLSv1.2"  # type: ignore[union-attr]
    assert json.loads(target.requests[0].body)["envelope"]["tls_cipher"] == "TLSv1.2"


def test_the_certificate_names_the_configured_host(edge: EdgeThread) -> None:
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    smtp.starttls()
    assert isinstance(smtp.sock, ssl.SSLSocket)
    der = smtp.sock.getpeercert(binary_form=True)
    assert der is not None and b"mx.cloudmailin.test" in der


def test_commands_pipelined_behind_starttls_are_discarded(
    edge: EdgeThread, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox()
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    smtp.send(f"STARTTLS\r\nMAIL FROM:<evil@stranger.example>\r\nRCPT TO:<{box.address}>\r\n")
    assert smtp.reply() == ["220 Ready to start TLS"]
    smtp.sock = no_verify().wrap_socket(smtp.sock, server_hostname="localhost")
    talk(
        smtp,
        [
            ("EHLO client.example", EHLO_AFTER_TLS),
            (f"RCPT TO:<{box.address}>", ["503 Error: need MAIL command"]),
        ],
    )


def test_auth_is_never_offered_nor_accepted_on_the_mx(edge: EdgeThread) -> None:
    smtp = Conversation(edge.mx_port)
    assert not any("AUTH" in line for line in smtp.command("EHLO client.example"))
    assert smtp.command("AUTH PLAIN AHVzZXIAcGFzcw==") == [
        "502 5.5.1 AUTH is not available on this port"
    ]
    smtp.starttls()
    assert smtp.command("EHLO client.example") == EHLO_AFTER_TLS
    assert smtp.command("AUTH LOGIN") == ["502 5.5.1 AUTH is not available on this port"]
    assert "AUTH" not in smtp.command("HELP")[0]


def test_a_whole_pipelined_transaction_gets_its_replies_in_order(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    smtp = Conversation(edge.mx_port)
    smtp.send(
        f"EHLO client.example\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<nobody@example.com>\r\n"
        f"RCPT TO:<{box.address}>\r\nDATA\r\n"
    )
    assert smtp.reply()[-1] == "250 HELP"
    assert smtp.reply() == ["250 2.1.0 OK"]
    assert smtp.reply()[0].startswith("550 5.7.1 ")
    assert smtp.reply() == ["250 2.1.5 OK"]
    assert smtp.reply() == ["354 End data with <CR><LF>.<CR><LF>"]
    smtp.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert smtp.reply() == ["250 2.0.0 Message accepted by the target (HTTP 200)"]
    assert smtp.reply() == ["221 Bye"]
    assert len(target.requests) == 1


def test_sessions_over_the_cap_are_told_to_come_back_later(
    edge: EdgeThread, mailbox: Callable[..., Mailbox]
) -> None:
    edge.restart(smtp_max_sessions=2)
    first, second = Conversation(edge.mx_port), Conversation(edge.submission_port)
    third = Conversation(edge.mx_port)
    assert third.greeting == ["421 4.3.2 Too many connections; try again later"]
    assert third.closed_by_server()
    assert first.command("QUIT") == ["221 Bye"]
    assert first.closed_by_server()
    assert Conversation(edge.mx_port).greeting[0].startswith("220 ")
    second.close()


def test_an_idle_client_is_told_421_and_disconnected_after_the_command_timeout(edge: EdgeThread) -> None:
    edge.restart(smtp_command_timeout=0.2)
    smtp = open_transaction(edge.mx_port)
    assert smtp.reply() == ["421 4.4.2 Timed out waiting for the client; closing"]
    assert smtp.closed_by_server()


def test_a_client_that_hangs_up_mid_data_leaves_no_post_and_no_record(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/200")
    smtp = open_transaction(edge.mx_port, box.address)
    smtp.command("DATA")
    smtp.send(b"Subject: cut\r\n\r\nhalf a message\r\n")
    smtp.sock.shutdown(socket.SHUT_RDWR)
    smtp.close()
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.sendmail(SENDER, [box.address], message("complete"))
    (post,) = target.requests
    assert json.loads(post.body)["headers"]["subject"] == "complete"
    assert history_count(db_session) == 1


def test_a_target_that_never_answers_does_not_hold_up_other_sessions(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    edge.restart(target_timeout=60.0)
    stuck, fine = mailbox("/never"), mailbox("/status/200")
    outcome: list[object] = []

    def deliver_to_stuck() -> None:
        with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
            try:
                client.sendmail(SENDER, [stuck.address], message("stuck"))
            except smtplib.SMTPDataError as exc:
                outcome.append(exc.smtp_code)

    waiting = threading.Thread(target=deliver_to_stuck)
    waiting.start()
    target.wait_for("/never")
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        assert client.sendmail(SENDER, [fine.address], message("fine")) == {}
    assert waiting.is_alive()  # still waiting for its target, while the other session finished
    target.release.set()  # the target hangs up without answering
    waiting.join(30)
    assert outcome == [450]


def test_stopping_lets_a_delivery_finish_and_tells_idle_sessions_421(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/never")
    port = edge.mx_port
    idle = Conversation(port)
    idle.command("EHLO client.example")
    busy = open_transaction(port, box.address)
    busy.command("DATA")
    busy.send(b"Subject: during shutdown\r\n\r\nbody\r\n.\r\n")
    target.wait_for("/never")
    stopping = asyncio.run_coroutine_threadsafe(edge.server.stop(grace=30), edge.loop)
    assert idle.reply() == ["421 4.3.2 Service shutting down; try again later"]
    assert idle.closed_by_server()
    target.release.set()
    assert busy.reply() == [
        "450 4.4.1 Target unreachable (connection closed before the response); try again later"
    ]
    assert busy.reply() == ["421 4.3.2 Service shutting down; try again later"]
    assert busy.closed_by_server()
    stopping.result(30)
    refused = socket.socket()
    assert refused.connect_ex(("127.0.0.1", port)) != 0
    refused.close()


def test_smtputf8_addresses_are_accepted(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    with smtplib.SMTP("127.0.0.1", edge.mx_port) as client:
        client.ehlo("client.example")
        assert client.has_extn("smtputf8")
        raw = "Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\ncafé\r\n".encode()
        client.sendmail("josé@sender.example", [box.address], raw, mail_options=["SMTPUTF8"])
    payload = json.loads(target.requests[0].body)
    assert payload["envelope"]["from"] == "josé@sender.example"
    assert payload["headers"]["subject"] == "café"


def test_starttls_presents_the_operators_certificate_when_one_is_configured(
    edge: EdgeThread, tmp_path: Path
) -> None:
    # A certificate made elsewhere, for another name, as an operator would install it.
    operator = dataclasses.replace(edge.settings, smtp_data_dir=str(tmp_path),
                                   smtp_hostname="mx.operator.example")
    cert, key = ensure_self_signed(operator)
    edge.restart(smtp_tls_cert=str(cert), smtp_tls_key=str(key))
    smtp = Conversation(edge.mx_port)
    smtp.command("EHLO client.example")
    smtp.starttls()
    assert isinstance(smtp.sock, ssl.SSLSocket)
    der = smtp.sock.getpeercert(binary_form=True)
    assert der is not None and b"mx.operator.example" in der and b"mx.cloudmailin.test" not in der
