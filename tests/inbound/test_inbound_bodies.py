"""`plain` and `html`: decoded text of the body parts, every part kept, null when absent."""

from __future__ import annotations

import base64

from provider.inbound import parse_message

from .samples import crlf, message

ALTERNATIVE = """From: a@example.com
Subject: alt
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

preamble is ignored
--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 =
soft break
--b1
Content-Type: text/html; charset="iso-8859-1"
Content-Transfer-Encoding: base64

{html}
--b1--
epilogue is ignored
"""


def test_plain_and_html_are_decoded_with_transfer_encoding_and_charset() -> None:
    html = base64.b64encode("<p>café</p>".encode("latin-1")).decode()
    parsed = parse_message(crlf(ALTERNATIVE.format(html=html)))
    assert parsed.plain == "Café soft break"
    assert parsed.html == "<p>café</p>"


def test_body_text_has_lf_line_ends() -> None:
    parsed = parse_message(message("Subject: s", "line one\nline two\n"))
    assert parsed.plain == "line one\nline two\n"


def test_plain_and_html_are_null_when_absent() -> None:
    html_only = parse_message(message("Content-Type: text/html; charset=utf-8", "<b>hi</b>"))
    assert (html_only.plain, html_only.html) == (None, "<b>hi</b>")
    no_text = parse_message(
        message("Content-Type: image/png\nContent-Transfer-Encoding: base64", "iVBORw0KGgo=")
    )
    assert (no_text.plain, no_text.html, no_text.reply_plain) == (None, None, None)


def test_message_without_content_type_is_plain_text() -> None:
    assert parse_message(message("Subject: s", "hello")).plain == "hello"


def test_several_text_parts_are_concatenated_in_order() -> None:
    raw = crlf(
        """Content-Type: multipart/mixed; boundary=m

--m
Content-Type: text/plain

first
--m
Content-Type: image/gif; name=dot.gif
Content-Transfer-Encoding: base64

R0lGODlhAQABAAAAACw=
--m
Content-Type: text/plain

second
--m
Content-Type: text/html

<p>one</p>
--m
Content-Type: text/html

<p>two</p>
--m--
"""
    )
    parsed = parse_message(raw)
    assert parsed.plain == "first\nsecond"
    assert parsed.html == "<p>one</p>\n<p>two</p>"
    assert [a.file_name for a in parsed.attachments] == ["dot.gif"]


def test_text_parts_that_are_attachments_do_not_go_to_plain() -> None:
    raw = crlf(
        """Content-Type: multipart/mixed; boundary=m

--m
Content-Type: text/plain

body
--m
Content-Type: text/plain
Content-Disposition: attachment

disposition says attachment
--m
Content-Type: text/plain; name="notes.txt"

a name makes it a file
--m
Content-Type: text/html
Content-Disposition: inline; filename="page.html"

<p>file</p>
--m
Content-Type: text/calendar; method=REQUEST

BEGIN:VCALENDAR
--m--
"""
    )
    parsed = parse_message(raw)
    assert parsed.plain == "body"
    assert parsed.html is None
    assert [(a.file_name, a.content_type) for a in parsed.attachments] == [
        ("attachment.txt", "text/plain"),
        ("notes.txt", "text/plain"),
        ("page.html", "text/html"),
        ("attachment.ics", "text/calendar"),
    ]
    assert parsed.attachments[0].content == b"disposition says attachment"


def test_us_ascii_label_on_utf8_text_is_read_as_utf8() -> None:
    raw = crlf("Content-Type: text/plain; charset=us-ascii\n\n") + "naïve".encode()
    assert parse_message(raw).plain == "naïve"


def test_latin1_label_on_latin1_text_is_read_as_latin1() -> None:
    raw = crlf("Content-Type: text/plain; charset=iso-8859-1\n\n") + "naïve €".encode("cp1252")
    assert parse_message(raw).plain == "naïve €"


def test_unknown_charset_falls_back_to_utf8_then_windows_1252() -> None:
    utf8 = crlf("Content-Type: text/plain; charset=x-made-up\n\n") + "grüße".encode()
    latin = crlf("Content-Type: text/plain; charset=x-made-up\n\n") + "grüße".encode("cp1252")
    assert parse_message(utf8).plain == "grüße"
    assert parse_message(latin).plain == "grüße"


def test_other_declared_charsets_are_honoured() -> None:
    for charset, text in [("koi8-r", "Привет"), ("shift_jis", "こんにちは"), ("gb2312", "你好")]:
        raw = crlf(f"Content-Type: text/plain; charset={charset}\n\n") + text.encode(charset)
        assert parse_message(raw).plain == text


def test_undecodable_bytes_are_replaced_not_fatal() -> None:
    raw = crlf("Content-Type: text/plain; charset=utf-8\n\n") + b"ok \xff\xfe end"
    assert parse_message(raw).plain == "ok \ufffd\ufffd end"


def test_non_text_codec_names_as_charset_are_treated_as_unknown() -> None:
    for charset in ("base64", "zlib", "idna", "punycode", "unicode_escape"):
        raw = crlf(f"Content-Type: text/plain; charset={charset}\n\n") + b"aGk= \\u0041"
        assert parse_message(raw).plain == "aGk= \\u0041"


def test_nul_bytes_in_text_become_replacement_characters() -> None:
    raw = crlf("Content-Type: text/plain\n\n") + b"a\x00b"
    assert parse_message(raw).plain == "a\ufffdb"


def test_invalid_base64_text_is_decoded_as_far_as_possible() -> None:
    raw = message("Content-Type: text/plain\nContent-Transfer-Encoding: base64", "aGVsbG8gd29y!!bGQ")
    assert parse_message(raw).plain == "hello world"


def test_unknown_transfer_encoding_passes_bytes_through() -> None:
    raw = message("Content-Type: text/plain\nContent-Transfer-Encoding: x-weird", "as is")
    assert parse_message(raw).plain == "as is"
