"""Blocked attachment names in a whole submitted message, wherever the MIME structure puts them."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from provider.errors import UnprocessableMessage
from provider.outbound.attachments import refuse_blocked_attachments
from provider.outbound.errors import BlockedAttachment


def message_with(*names: str | None, content_type: str = "application/octet-stream") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@shop.example", "b@example.com", "Files"
    message.set_content("See attached.")
    maintype, subtype = content_type.split("/")
    for name in names:
        message.add_attachment(b"data", maintype=maintype, subtype=subtype, filename=name)
    return message


def test_a_blocked_name_among_allowed_ones_is_found() -> None:
    with pytest.raises(BlockedAttachment) as refused:
        refuse_blocked_attachments(message_with("a.pdf", "b.txt", "run.BAT").as_bytes())
    assert refused.value.text == "Attachment 'run.BAT' refused: .bat files may not be sent"


def test_an_rfc_2231_encoded_name_is_decoded_before_the_check() -> None:
    with pytest.raises(BlockedAttachment):
        refuse_blocked_attachments(message_with("fäktura.exe").as_bytes())


def test_a_name_given_only_as_the_content_type_parameter_counts() -> None:
    raw = (
        b"From: a@shop.example\r\nTo: b@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b'--x\r\nContent-Type: application/x-msdownload; name="tool.exe"\r\n\r\nMZ\r\n--x--\r\n'
    )
    with pytest.raises(BlockedAttachment):
        refuse_blocked_attachments(raw)


def test_an_attachment_in_a_nested_multipart_is_checked() -> None:
    raw = (
        b"From: a@shop.example\r\nTo: b@example.com\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n"
        b"--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
        b"--in\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--in\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="macro.vbs"\r\n\r\nx\r\n--in--\r\n'
        b"--out--\r\n"
    )
    with pytest.raises(BlockedAttachment):
        refuse_blocked_attachments(raw)


@pytest.mark.parametrize("names", [(), ("report.pdf", "archive.tar.gz", "README"), (None,)])
def test_messages_without_blocked_names_pass(names: tuple[str | None, ...]) -> None:
    message = message_with(*names)
    for part in message.iter_attachments():
        if part.get_filename() is None:
            del part["Content-Disposition"]
    refuse_blocked_attachments(message.as_bytes())


def test_nesting_deeper_than_the_parser_reads_is_refused_rather_than_passed_unchecked() -> None:
    head = b"From: a@shop.example\r\nTo: b@example.com\r\n"
    body = b""
    for level in range(40):
        body += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
    raw = head + body + b'Content-Type: application/octet-stream; name="x.exe"\r\n\r\nMZ\r\n'
    with pytest.raises(UnprocessableMessage):
        refuse_blocked_attachments(raw)
