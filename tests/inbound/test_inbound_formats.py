"""The POST bodies: JSON, Multipart (Normalized), Raw and Raw JSON, read back by real parsers."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import pytest

from provider.inbound import Attachment, SpfResult, parse_message, render

from .samples import crlf, envelope, form_parts, parse_form

# The message behind the example payload in spec/inbound.md (the add-on's Heroku documentation).
SPEC_EXAMPLE = crlf(
    """Return-Path: from@example.com
Received: by 10.52.90.229 with SMTP id bx5cs14958vdb;
        Mon, 16 Jan 2012 09:00:07 -0800
Received: by 10.216.131.153 with SMTP id m25mr5960339wei.69.1326733205470;
        Mon, 16 Jan 2012 09:00:05 -0800 (PST)
Received: from mail-wi0-f170.google.com (mail-wi0-f170.google.com [209.85.212.170])
Date: Mon, 16 Jan 2012 17:00:01 +0000
From: Message Sender <sender@example.com>
To: Message Recipient<to@example.co.uk>
Message-ID: <4F145791.8040802@example.com>
Subject: Test Subject
Mime-Version: 1.0
Content-Type: multipart/mixed; boundary=outer
Delivered-To: to@example.com
User-Agent: Postbox 3.0.2 (Macintosh/20111203)

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=ISO-8859-1; format=flowed

Test with HTML.
--inner
Content-Type: text/html; charset=ISO-8859-1

<html><head></head><body>Test with <span style="font-weight: bold;">HTML</span>.</body></html>
--inner--

--outer
Content-Type: text/plain; name="file.txt"
Content-Disposition: attachment; filename="file.txt"
Content-Transfer-Encoding: base64

dGVzdGZpbGU=
--outer--
"""
)


def json_of(raw: bytes, **envelope_overrides: object) -> dict[str, object]:
    payload = render("json", raw, parse_message(raw), envelope(**envelope_overrides))
    assert payload.content_type == "application/json"
    document: dict[str, object] = json.loads(payload.body)
    return document


def test_spec_example_payload_shapes() -> None:
    document = json_of(SPEC_EXAMPLE, tls_cipher=None)
    assert list(document) == ["headers", "envelope", "plain", "html", "reply_plain", "attachments"]
    headers = document["headers"]
    assert isinstance(headers, dict)
    assert headers["return_path"] == "from@example.com"
    assert isinstance(headers["received"], list) and len(headers["received"]) == 3
    assert headers["received"][0].startswith("by 10.52.90.229 ")
    assert headers["received"][2].startswith("from mail-wi0-f170.google.com ")
    assert headers["date"] == "Mon, 16 Jan 2012 17:00:01 +0000"
    assert headers["from"] == "Message Sender <sender@example.com>"
    assert headers["to"] == "Message Recipient<to@example.co.uk>"
    assert headers["message_id"] == "<4F145791.8040802@example.com>"
    assert headers["subject"] == "Test Subject"
    assert headers["mime_version"] == "1.0"
    assert headers["content_type"] == "multipart/mixed; boundary=outer"
    assert headers["delivered_to"] == "to@example.com"
    assert headers["user_agent"] == "Postbox 3.0.2 (Macintosh/20111203)"
    assert document["envelope"] == {
        "to": "to@example.com",
        "recipients": ["to@example.com", "another@example.com"],
        "from": "from@example.com",
        "helo_domain": "localhost",
        "remote_ip": "127.0.0.1",
        "spf": {"result": "pass", "domain": "example.com"},
        "tls": True,
        "md5": hashlib.md5(SPEC_EXAMPLE, usedforsecurity=False).hexdigest(),
    }
    assert document["plain"] == "Test with HTML."
    assert document["html"] == (
        '<html><head></head><body>Test with <span style="font-weight: bold;">HTML</span>.</body></html>'
    )
    assert document["reply_plain"] is None  # a fresh message, not a reply
    assert document["attachments"] == [
        {
            "content": "dGVzdGZpbGU=",
            "file_name": "file.txt",
            "content_type": "text/plain",
            "size": 8,
            "disposition": "attachment",
        }
    ]


def test_envelope_has_tls_cipher_only_with_tls_and_store_url_only_when_set() -> None:
    with_tls = json_of(SPEC_EXAMPLE)["envelope"]
    assert isinstance(with_tls, dict)
    assert with_tls["tls_cipher"] == "TLSv1.3" and "store_url" not in with_tls
    plain_tcp = json_of(SPEC_EXAMPLE, tls=False, tls_cipher="ignored")["envelope"]
    assert isinstance(plain_tcp, dict)
    assert plain_tcp["tls"] is False and "tls_cipher" not in plain_tcp
    stored = json_of(SPEC_EXAMPLE, store_url="https://s3.example/m.eml")["envelope"]
    assert isinstance(stored, dict) and stored["store_url"] == "https://s3.example/m.eml"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<from@example.com>", "from@example.com"),
        (" < bounce+x=y@example.com > ", "bounce+x=y@example.com"),
        ("<>", ""),
        ("from@example.com", "from@example.com"),
        ("<a@example.com> (comment)", "<a@example.com> (comment)"),
    ],
)
def test_return_path_is_the_bare_address(value: str, expected: str) -> None:
    raw = crlf(f"Return-Path: {value}\nSubject: s\n\nbody\n")
    assert json_of(raw)["headers"]["return_path"] == expected  # type: ignore[index]
    form, _ = parse_form(render("multipart", raw, parse_message(raw), envelope()))
    assert form["headers[return_path]"] == expected


def test_every_return_path_of_a_resent_message_is_bare() -> None:
    raw = crlf("Return-Path: <new@example.com>\nReturn-Path: <old@example.com>\n\nbody\n")
    headers = json_of(raw)["headers"]
    assert headers["return_path"] == ["new@example.com", "old@example.com"]  # type: ignore[index]


def test_null_sender_is_an_empty_from() -> None:
    envelope_fields = json_of(SPEC_EXAMPLE, mail_from="", spf=SpfResult("none", "localhost"))
    assert envelope_fields["envelope"]["from"] == ""  # type: ignore[index]


def test_unknown_spf_result_is_refused() -> None:
    with pytest.raises(ValueError, match="SPF"):
        SpfResult("ambiguous", "example.com")


def test_multipart_normalized_fields_as_a_wsgi_app_reads_them() -> None:
    payload = render("multipart", SPEC_EXAMPLE, parse_message(SPEC_EXAMPLE), envelope())
    assert payload.content_type.startswith("multipart/form-data; boundary=")
    form, files = parse_form(payload)
    assert form["plain"] == "Test with HTML."
    assert form["html"].startswith("<html>")
    assert "reply_plain" not in form  # a fresh message: omitted, like an absent plain
    assert form["headers[subject]"] == "Test Subject"
    assert form["headers[received][0]"].startswith("by 10.52.90.229 ")
    assert form["headers[received][2]"].startswith("from mail-wi0-f170")
    assert "headers[received]" not in form and "headers[subject][0]" not in form
    assert form["envelope[to]"] == "to@example.com"
    assert form.getlist("envelope[recipients][0]") == ["to@example.com"]
    assert form["envelope[recipients][1]"] == "another@example.com"
    assert form["envelope[from]"] == "from@example.com"
    assert form["envelope[helo_domain]"] == "localhost"
    assert form["envelope[remote_ip]"] == "127.0.0.1"
    assert form["envelope[spf][result]"] == "pass"
    assert form["envelope[spf][domain]"] == "example.com"
    assert form["envelope[tls]"] == "true"
    assert form["envelope[md5]"] == hashlib.md5(SPEC_EXAMPLE, usedforsecurity=False).hexdigest()
    (attachment,) = files.getlist("attachments[]")
    assert attachment.filename == "file.txt"
    assert attachment.mimetype == "text/plain"
    assert attachment.read() == b"testfile"


def test_reply_plain_carries_only_the_new_text_of_a_reply() -> None:
    reply = crlf("Subject: Re: x\n\nNew text\n\nOn Mon, 1 Jan 2024, A <a@x.com> wrote:\n> old\n")
    assert json_of(reply)["reply_plain"] == "New text"
    form, _ = parse_form(render("multipart", reply, parse_message(reply), envelope()))
    assert form["reply_plain"] == "New text"
    assert form["plain"].startswith("New text\n\nOn Mon")


def test_multipart_tls_false_and_omitted_absent_fields() -> None:
    raw = crlf("Subject: s\nContent-Type: text/html\n\n<b>x</b>")
    payload = render("multipart", raw, parse_message(raw), envelope(tls=False))
    form, files = parse_form(payload)
    assert form["envelope[tls]"] == "false"
    assert "envelope[tls_cipher]" not in form
    assert "plain" not in form and "reply_plain" not in form
    assert not files and not any(name.startswith("attachments") for name in form)


def test_multipart_file_parts_carry_raw_bytes_and_awkward_names() -> None:
    binary = bytes(range(256)) * 4
    raw = crlf(
        "Subject: s\nContent-Type: multipart/mixed; boundary=m\n\n--m\n"
        'Content-Type: application/octet-stream; name="qu\\"ote ünï.bin"\n'
        f"Content-Transfer-Encoding: base64\n\n{base64.b64encode(binary).decode()}\n--m--\n"
    )
    payload = render("multipart", raw, parse_message(raw), envelope())
    _, files = parse_form(payload)
    (attachment,) = files.getlist("attachments[]")
    # Sent as browsers escape a quote (%22); Werkzeug, like other form parsers, undoes that.
    assert attachment.filename == 'qu"ote ünï.bin'
    assert attachment.read() == binary
    assert form_parts(payload)[-1] == ("attachments[]", binary)


def test_multipart_stored_attachments_are_url_fields_per_attachment() -> None:
    parsed = parse_message(SPEC_EXAMPLE)
    stored = [
        Attachment("file.txt", "text/plain", b"", "attachment", url="https://s/1.txt", size=8),
        Attachment("i.png", "image/png", b"", "inline", "<i@x>", url="https://s/2.png", size=3),
    ]
    payload = render("multipart", SPEC_EXAMPLE, replace(parsed, attachments=stored), envelope())
    form, files = parse_form(payload)
    assert not files
    assert form.getlist("attachments[][url]") == ["https://s/1.txt", "https://s/2.png"]
    assert form.getlist("attachments[][file_name]") == ["file.txt", "i.png"]
    assert form.getlist("attachments[][content_type]") == ["text/plain", "image/png"]
    assert form.getlist("attachments[][size]") == ["8", "3"]
    assert form.getlist("attachments[][disposition]") == ["attachment", "inline"]
    assert form.getlist("attachments[][content_id]") == ["<i@x>"]


def test_boundary_never_occurs_in_the_content() -> None:
    # Content that contains what a boundary looks like: the real one must differ every time.
    raw = crlf("Subject: ----CloudMailinFormBoundary\n\n--") + b"----CloudMailinFormBoundary" * 100
    for fmt in ("multipart", "raw"):
        payload = render(fmt, raw, parse_message(raw), envelope())
        boundary = payload.content_type.split("boundary=")[1].encode()
        assert raw.count(boundary) == 0
        assert payload.body.count(b"--" + boundary) == len(form_parts(payload)) + 1


def test_raw_format_carries_the_message_byte_for_byte() -> None:
    raw = SPEC_EXAMPLE + b"\xff\xfe bare\rCR and \x00 NUL\r\n"
    payload = render("raw", raw, parse_message(raw), envelope())
    parts = dict(form_parts(payload))
    assert parts["message"] == raw
    assert parts["envelope[to]"] == b"to@example.com"
    assert parts["envelope[tls]"] == b"true"
    assert parts["envelope[md5]"] == hashlib.md5(raw, usedforsecurity=False).hexdigest().encode()
    assert not any(name.startswith(("headers", "plain", "attachments")) for name in parts)


def test_raw_json_variant_has_message_and_envelope() -> None:
    payload = render("raw_json", SPEC_EXAMPLE, parse_message(SPEC_EXAMPLE), envelope())
    document = json.loads(payload.body)
    assert list(document) == ["message", "envelope"]
    assert document["message"].encode() == SPEC_EXAMPLE
    assert document["envelope"]["recipients"] == ["to@example.com", "another@example.com"]


def test_unknown_format_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render("xml", SPEC_EXAMPLE, parse_message(SPEC_EXAMPLE), envelope())


def test_json_is_utf8_and_escapes_what_json_requires() -> None:
    raw = crlf('Subject: "quoted" \\ back\nContent-Type: text/plain; charset=utf-8\n\nünïcode\t\u2028')
    payload = render("json", raw, parse_message(raw), envelope())
    assert "ünïcode".encode() in payload.body
    document = json.loads(payload.body.decode("utf-8"))
    assert document["headers"]["subject"] == '"quoted" \\ back'
    assert document["plain"] == "ünïcode\t\u2028"
