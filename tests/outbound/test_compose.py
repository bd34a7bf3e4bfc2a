"""Composing the message that leaves the service: CRLF only, every request field in its place."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from provider.outbound.compose import compose, crlf, header_values, rewrite_head
from provider.outbound.errors import OutboundTooBig, RawMismatch
from provider.outbound.limits import MAX_MESSAGE_BYTES
from provider.outbound.request import read_request

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
ID = "5b2f6c9e-1f0a-4a53-9c1e-0d8d1c2a7f10"


def _compose(**fields):
    body = {"from": "Shop <orders@shop.example>", "to": "ann@example.com", **fields}
    return compose(read_request(body), ID, NOW)


def _parsed(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def _text(part) -> str:
    """A text part's content; MIME's canonical form (RFC 2045) has CRLF lines even when encoded."""
    content = part.get_content()
    assert "\n" not in content.replace("\r\n", "") and "\r" not in content.replace("\r\n", "")
    return content.replace("\r\n", "\n")


def _no_bare_line_endings(raw: bytes) -> bool:
    return re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is None


def test_a_plain_message_has_the_envelope_headers_and_crlf_lines() -> None:
    raw = _compose(plain="Line one\nline two\r\nthree\rfour", subject="Your order", cc="bo@example.com")
    assert _no_bare_line_endings(raw)
    message = _parsed(raw)
    assert message["From"] == "Shop <orders@shop.example>"
    assert (message["To"], message["Cc"]) == ("ann@example.com", "bo@example.com")
    assert message["Subject"] == "Your order"
    assert message["Message-ID"] == f"<{ID}@shop.example>"
    assert message["Date"] == "Tue, 01 Dec 2026 09:30:00 +0000"
    assert message.get_content_type() == "text/plain"
    assert _text(message) == "Line one\nline two\nthree\nfour\n"


def test_plain_and_html_make_an_alternative_and_non_ascii_is_encoded() -> None:
    raw = _compose(plain="Grüße", html="<p>Grüße</p>", subject="Größe ☃")
    assert raw.isascii()
    message = _parsed(raw)
    assert message["Subject"] == "Größe ☃" and b"=?utf-8?" in raw
    assert message.get_content_type() == "multipart/alternative"
    assert raw.count(b"MIME-Version") == 1
    plain, html = message.iter_parts()
    assert _text(plain) == "Grüße\n" and _text(html) == "<p>Grüße</p>\n"


def test_markdown_is_rendered_to_html_and_kept_as_the_plain_part() -> None:
    message = _parsed(_compose(markdown="# Hi\n\n**bold** and a [link](https://shop.example)"))
    plain, html = message.iter_parts()
    assert plain.get_content().startswith("# Hi")
    assert "<h1>Hi</h1>" in html.get_content()
    assert '<strong>bold</strong> and a <a href="https://shop.example">link</a>' in html.get_content()


def test_inline_attachments_are_related_to_the_html_and_others_are_mixed() -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    message = _parsed(
        _compose(
            plain="See the logo",
            html='<img src="cid:logo">',
            attachments=[
                {"file_name": "logo.png", "content": base64.b64encode(png).decode(),
                 "content_type": "image/png", "content_id": "logo"},
                {"file_name": "terms.txt", "content": base64.b64encode(b"terms\n").decode(),
                 "content_type": "text/plain"},
            ],
        )
    )
    assert message.get_content_type() == "multipart/mixed"
    alternative, terms = message.iter_parts()
    _, related = alternative.iter_parts()
    assert related.get_content_type() == "multipart/related"
    _, logo = related.iter_parts()
    assert logo["Content-ID"] == "<logo>" and logo.get_content() == png
    assert logo.get_content_disposition() == "inline"
    assert terms.get_filename() == "terms.txt" and terms.get_content_disposition() == "attachment"


def test_custom_headers_are_added_in_order_and_a_given_date_is_kept() -> None:
    date = "Mon, 30 Nov 2026 10:00:00 +0000"
    message = _parsed(_compose(plain="x", headers={"X-Order": ["1", "2"], "Date": date}))
    assert message.get_all("X-Order") == ["1", "2"]
    assert message.get_all("Date") == [date]


def test_long_lines_are_encoded_rather_than_sent_over_998_characters() -> None:
    raw = _compose(plain="x" * 5000)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert _text(_parsed(raw)) == "x" * 5000 + "\n"


def test_a_raw_message_keeps_its_body_and_gets_crlf_date_and_message_id() -> None:
    raw = (
        "From: orders@shop.example\nTo: Ann <ann@example.com>\nBcc: secret@example.com\n"
        "Subject: Old\n\nBody\nline\r\n"
    )
    sent = _compose(raw=raw, subject="New")
    assert _no_bare_line_endings(sent)
    assert sent.endswith(b"\r\n\r\nBody\r\nline\r\n")
    message = _parsed(sent)
    assert message["Subject"] == "New" and message["Bcc"] is None
    assert message["Message-ID"] == f"<{ID}@shop.example>" and message["Date"]


def test_a_raw_message_whose_headers_disagree_is_refused() -> None:
    with pytest.raises(RawMismatch, match="From header"):
        _compose(raw="From: someone@else.example\r\nTo: ann@example.com\r\n\r\nx")
    with pytest.raises(RawMismatch, match="To header"):
        _compose(raw="From: orders@shop.example\r\nTo: bo@example.com\r\n\r\nx")
    with pytest.raises(RawMismatch, match="To header"):
        _compose(raw="From: orders@shop.example\r\n\r\nno To at all")


def test_a_message_over_10_mb_is_refused() -> None:
    big = base64.b64encode(b"\0" * (MAX_MESSAGE_BYTES * 3 // 4 + 10)).decode()
    with pytest.raises(OutboundTooBig, match="10 MB"):
        _compose(plain="x", attachments=[{"file_name": "big.dat", "content": big}])


def test_rewrite_head_drops_folded_fields_whole_and_leaves_the_body() -> None:
    raw = crlf(b"X-Cloudmta-Tags: a,\n b\nSubject: s\nX-Cloudmta-Class: digest\n\nX-Cloudmta-Tags: body\n")
    rewritten = rewrite_head(raw, drop={"x-cloudmta-tags", "x-cloudmta-class"}, add=[("X-New", "v")])
    assert rewritten == b"X-New: v\r\nSubject: s\r\n\r\nX-Cloudmta-Tags: body\r\n"
    assert header_values(raw, "x-cloudmta-tags") == ["a, b"]


@pytest.mark.parametrize("raw", [
    b"A: b\r\n\r\nbody\r\n", b"A: b\n\nbody\n", b"A: b\r\rbody\r", b"A: b\r\n\nmixed\r\r\n", b"no ending",
    b"\r\n", b"\n\r", b"", b"end\r\n\r", b"x\r\ny\nz\r",
])
def test_crlf_gives_every_line_a_crlf_ending_as_the_pattern_does(raw: bytes) -> None:
    import re

    expected = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    assert crlf(raw) == (expected if expected.endswith(b"\r\n") else expected + b"\r\n")
