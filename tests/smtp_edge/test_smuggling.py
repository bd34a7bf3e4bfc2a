"""SMTP smuggling: only CRLF.CRLF ends DATA, so no bare-CR/LF variant can start a second message."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import Conversation, EdgeThread, Mailbox, Target, open_transaction

FAKE_ENDINGS = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\n.\r",
    b"\r\n.\r",
    b"\r\n.\x00\r\n",
]


def unstuffed(data: bytes) -> bytes:
    """RFC 5321 section 4.5.2: a leading dot is removed from every CRLF-delimited line."""
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in data.split(b"\r\n"))


def open_data(edge: EdgeThread, recipient: str) -> Conversation:
    smtp = open_transaction(edge.mx_port, recipient)
    assert smtp.command("DATA") == ["354 End data with <CR><LF>.<CR><LF>"]
    return smtp


@pytest.mark.parametrize("ending", FAKE_ENDINGS, ids=repr)
def test_a_smuggled_message_stays_inside_the_first_one(
    ending: bytes, edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200", fmt="raw")
    first = b"Subject: first\r\n\r\nfirst body"
    smuggled = (
        b"MAIL FROM:<evil@stranger.example>\r\n"
        + f"RCPT TO:<{box.address}>\r\n".encode()
        + b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n"
    )
    smtp = open_data(edge, box.address)
    smtp.send(first + ending + smuggled + b".\r\n")
    # Exactly one reply for the whole stream: no 250/354 for smuggled commands.
    assert smtp.reply() == ["250 2.0.0 Message accepted by the target (HTTP 200)"]
    assert smtp.command("QUIT") == ["221 Bye"]
    (post,) = target.requests
    assert post.form()["message"] == unstuffed(first + ending + smuggled)
    assert b"smuggled body" in post.form()["message"]


def test_a_bare_lf_line_before_the_real_end_is_kept_and_the_real_end_still_ends_data(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200", fmt="raw")
    smtp = open_data(edge, box.address)
    smtp.send(b"Subject: lf\r\n\r\nline one\nline two\n\r\n.\r\n")
    assert smtp.reply()[0].startswith("250 ")
    assert target.requests[0].form()["message"] == b"Subject: lf\r\n\r\nline one\nline two\n\r\n"


def test_dots_are_unstuffed_only_at_the_start_of_real_lines(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200", fmt="raw")
    smtp = open_data(edge, box.address)
    smtp.send(b"Subject: dots\r\n\r\n..one\r\na\n..two\r\n...\r\n.\r\n")
    assert smtp.reply()[0].startswith("250 ")
    assert (
        target.requests[0].form()["message"] == b"Subject: dots\r\n\r\n.one\r\na\n..two\r\n..\r\n"
    )


def test_an_empty_message_ends_at_once(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200", fmt="raw")
    smtp = open_data(edge, box.address)
    smtp.send(b".\r\n")
    assert smtp.reply()[0].startswith("250 ")
    assert target.requests[0].form()["message"] == b""


def test_lines_longer_than_the_read_buffer_arrive_whole(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200", fmt="raw")
    smtp = open_data(edge, box.address)
    long_line = b"." + b"x" * 200_000 + b"\r"  # a dot at its start, a bare CR at its end
    smtp.send(b"Subject: long\r\n\r\n" + long_line + b"\r\n.\r\n")
    assert smtp.reply()[0].startswith("250 ")
    assert (
        target.requests[0].form()["message"] == b"Subject: long\r\n\r\n" + long_line[1:] + b"\r\n"
    )
