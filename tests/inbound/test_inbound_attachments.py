"""`attachments`: every non-body leaf, with the fields the spec lists."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

from provider.inbound import Attachment, parse_message, render

from .samples import crlf, envelope


def mixed(*parts: str) -> bytes:
    body = "".join(f"--m\n{part.strip(chr(10))}\n" for part in parts)
    return crlf(f"Subject: s\nContent-Type: multipart/mixed; boundary=m\n\n{body}--m--\n")


def json_attachments(raw: bytes, *, size_as_string: bool = False) -> list[dict[str, object]]:
    payload = render("json", raw, parse_message(raw), envelope(), size_as_string=size_as_string)
    attachments: list[dict[str, object]] = json.loads(payload.body)["attachments"]
    return attachments


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
FOLDED_PNG = "\n".join(PNG[i : i + 76] for i in range(0, len(PNG), 76))


def test_attachment_fields_and_base64_content_without_newlines() -> None:
    raw = mixed(
        "Content-Type: text/plain\n\nbody",
        "Content-Type: image/png; name=x.png\nContent-Disposition: attachment; "
        f'filename="logo.png"\nContent-Transfer-Encoding: base64\n\n{FOLDED_PNG}',
    )
    assert json_attachments(raw) == [
        {
            "file_name": "logo.png",
            "content_type": "image/png",
            "size": 264,
            "disposition": "attachment",
            "content": PNG,
        }
    ]


def test_attachments_is_an_empty_list_when_there_are_none() -> None:
    assert json_attachments(crlf("Subject: s\n\nbody")) == []


def test_size_can_be_sent_as_a_string() -> None:
    raw = mixed("Content-Type: application/pdf; name=a.pdf\n\n%PDF-1")
    assert json_attachments(raw, size_as_string=True)[0]["size"] == "6"


def test_inline_image_keeps_content_id_with_angle_brackets() -> None:
    raw = mixed(
        "Content-Type: image/png\nContent-ID: <logo@x>\nContent-Transfer-Encoding: base64\n\n" + PNG,
        "Content-Type: image/png\nContent-ID: bare@x\nContent-Disposition: attachment\n\n.",
    )
    first, second = json_attachments(raw)
    # No disposition header and a Content-ID: inline; a bare id gets its brackets.
    assert (first["disposition"], first["content_id"]) == ("inline", "<logo@x>")
    assert (second["disposition"], second["content_id"]) == ("attachment", "<bare@x>")


def test_content_id_key_is_absent_when_the_part_has_none() -> None:
    attachment = json_attachments(mixed("Content-Type: application/zip; name=a.zip\n\nPK"))[0]
    assert "content_id" not in attachment


def test_rfc2231_and_rfc2047_file_names_are_decoded() -> None:
    raw = mixed(
        "Content-Type: application/pdf\nContent-Disposition: attachment;\n"
        " filename*=utf-8''r%C3%A9sum%C3%A9%20final.pdf\n\n1",
        "Content-Type: application/pdf\nContent-Disposition: attachment;\n"
        " filename*0*=utf-8''%E6%97%A5%E6%9C%AC; filename*1=\".txt\"\n\n2",
        'Content-Type: application/pdf; name="=?UTF-8?B?w7xiZXIucGRm?="\n\n3',
        'Content-Type: application/pdf; name="quoted \\"name\\"; with semicolon.pdf"\n\n4',
    )
    assert [a["file_name"] for a in json_attachments(raw)] == [
        "résumé final.pdf",
        "日本.txt",
        "über.pdf",
        'quoted "name"; with semicolon.pdf',
    ]


def test_file_names_lose_directories_and_control_characters() -> None:
    raw = mixed(
        'Content-Type: application/pdf; name="C:\\\\Users\\\\me\\\\report.pdf"\n\n1',
        'Content-Type: application/pdf; name="../../etc/passwd"\n\n2',
        'Content-Type: application/pdf; name="a\tb.pdf"\n\n3',
    )
    assert [a["file_name"] for a in json_attachments(raw)] == ["report.pdf", "passwd", "a_b.pdf"]


def test_unnamed_attachments_get_a_name_from_their_type() -> None:
    raw = mixed("Content-Type: image/jpeg\n\n1", "Content-Type: application/x-unheard-of\n\n2")
    assert [a["file_name"] for a in json_attachments(raw)] == ["attachment.jpg", "attachment.bin"]


def test_invalid_content_type_of_a_named_file_is_guessed_from_its_name() -> None:
    raw = mixed('Content-Type: ; name="face.jpg"\nContent-Disposition: attachment\n\n1')
    assert json_attachments(raw)[0]["content_type"] == "image/jpeg"


def test_nested_message_is_one_attachment_and_its_text_stays_out_of_plain() -> None:
    inner = "From: inner@example.com\nSubject: Inner\n\ninner body text\n"
    raw = mixed(
        "Content-Type: text/plain\n\nouter body",
        f"Content-Type: message/rfc822\n\n{inner}",
        f'Content-Type: message/rfc822; name="fwd.eml"\n\n{inner}',
    )
    parsed = parse_message(raw)
    assert parsed.plain == "outer body"
    assert [(a.file_name, a.content_type) for a in parsed.attachments] == [
        ("message.eml", "message/rfc822"),
        ("fwd.eml", "message/rfc822"),
    ]
    # The embedded message as sent (the line break before the delimiter belongs to it).
    assert parsed.attachments[0].content == crlf(inner.rstrip("\n"))
    assert parse_message(parsed.attachments[0].content).subject == "Inner"


def test_quoted_printable_attachment_is_decoded() -> None:
    raw = mixed(
        "Content-Type: text/csv; name=a.csv\nContent-Transfer-Encoding: quoted-printable\n\na,b=3Dc,=E9"
    )
    assert parse_message(raw).attachments[0].content == b"a,b=c,\xe9"


def test_stored_attachment_renders_url_instead_of_content() -> None:
    raw = mixed("Content-Type: application/pdf; name=a.pdf\n\n%PDF-1")
    parsed = parse_message(raw)
    stored = Attachment(
        file_name="a.pdf",
        content_type="application/pdf",
        content=b"",
        disposition="attachment",
        url="https://bucket.example/0123456789abcdef0123.pdf",
        size=parsed.attachments[0].size,
    )
    payload = render("json", raw, replace(parsed, attachments=[stored]), envelope())
    assert json.loads(payload.body)["attachments"] == [
        {
            "file_name": "a.pdf",
            "content_type": "application/pdf",
            "size": 6,
            "disposition": "attachment",
            "url": "https://bucket.example/0123456789abcdef0123.pdf",
        }
    ]


def test_attachment_size_defaults_to_the_content_length() -> None:
    assert Attachment("a", "text/plain", b"12345", "attachment").size == 5
