"""Hostile input: every case ends with a payload or MessageTooComplex, in bounded memory."""

from __future__ import annotations

import base64
import json
import os
import tracemalloc

import pytest

from provider.inbound import MessageTooComplex, ParseLimits, parse_message, render
from provider.inbound.parse import UNPARSED_NAME

from .samples import envelope, form_parts

HEAD = b"From: a@example.com\r\nSubject: hostile\r\n"


def renders(raw: bytes) -> dict[str, object]:
    """Parse, render both normalized formats, check both parse back; return the JSON."""
    parsed = parse_message(raw)
    form_parts(render("multipart", raw, parsed, envelope()))
    document: dict[str, object] = json.loads(render("json", raw, parsed, envelope()).body)
    return document


def nested(depth: int) -> bytes:
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--" % i for i in reversed(range(depth)))
    return HEAD + opening + b"Content-Type: text/plain\r\n\r\ndeep text" + closing + b"\r\n"


def test_thousand_level_nesting_passes_the_deep_subtree_on_as_one_attachment() -> None:
    raw = nested(1000)
    document = renders(raw)
    parsed = parse_message(raw)
    assert document["plain"] is None
    (attachment,) = parsed.attachments
    assert (attachment.file_name, attachment.content_type) == (UNPARSED_NAME, "message/rfc822")
    # Nothing is lost: the passed-on entity still holds the deepest text.
    assert b"deep text" in attachment.content
    assert parsed.notes


def test_nesting_within_the_limit_is_followed() -> None:
    parsed = parse_message(nested(20))
    assert parsed.plain == "deep text" and parsed.attachments == []


def test_twenty_thousand_parts_are_refused() -> None:
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=p\r\n\r\n"
    raw += b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 20_000 + b"--p--\r\n"
    with pytest.raises(MessageTooComplex, match="MIME parts"):
        parse_message(raw)


def test_part_limit_is_configurable_and_inclusive() -> None:
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=p\r\n\r\n"
    raw += b"--p\r\n\r\nx\r\n" * 4 + b"--p--\r\n"
    assert parse_message(raw, ParseLimits(max_parts=5)).plain == "x\nx\nx\nx"
    with pytest.raises(MessageTooComplex):
        parse_message(raw, ParseLimits(max_parts=4))


def test_too_many_header_fields_are_refused() -> None:
    raw = b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\nbody"
    with pytest.raises(MessageTooComplex, match="header fields"):
        parse_message(raw)


def test_megabyte_header_lines_and_folds_are_kept_whole() -> None:
    long_line = b"a" * 1_000_000
    raw = b"Subject: " + long_line + b"\r\nX-Folded: x" + b"\r\n y" * 200_000 + b"\r\n\r\nbody"
    headers = renders(raw)["headers"]
    assert isinstance(headers, dict)
    assert headers["subject"] == long_line.decode()
    assert headers["x_folded"] == "x" + " y" * 200_000


def test_nul_bytes_everywhere_are_survived() -> None:
    raw = HEAD + b'Content-Type: multipart/mixed; boundary="n\x00"\r\n\r\n\x00\x00\r\n--n\x00\r\n'
    raw += b"Content-Type: text/plain\r\n\r\na\x00b\r\n--n\x00--\r\n"
    assert renders(raw)["plain"] == "a\ufffdb"


def test_invalid_base64_attachment_is_delivered_as_far_as_it_decodes() -> None:
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    raw += b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    raw += b"!!aGVs\xffbG8=garbage===\r\n--b--\r\n"
    (attachment,) = parse_message(raw).attachments
    assert attachment.content.startswith(b"hello")


def test_missing_boundary_parameter_reads_the_body_as_text() -> None:
    raw = HEAD + b"Content-Type: multipart/mixed\r\n\r\n--x\r\nnot really parts\r\n"
    assert renders(raw)["plain"] == "--x\nnot really parts\n"


def test_missing_close_delimiter_ends_the_last_part_at_the_end() -> None:
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nfirst\r\n--b\r\n"
    raw += b"Content-Type: application/pdf; name=a.pdf\r\n\r\n%PDF"
    parsed = parse_message(raw)
    assert parsed.plain == "first" and parsed.attachments[0].content == b"%PDF"


def test_declared_boundary_that_never_occurs_is_recovered_from_the_first_line() -> None:
    raw = HEAD + b"Content-Type: multipart/alternative; boundary=declared\r\n\r\n--used\r\n"
    raw += b"Content-Type: text/html\r\n\r\n<p>spam</p>\r\n--other--\r\n"
    parsed = parse_message(raw)
    assert parsed.html is not None and parsed.html.startswith("<p>spam</p>")


def test_nested_multipart_reusing_its_parents_boundary_keeps_later_parts() -> None:
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=s\r\n\r\n--s\r\n"
    raw += b"Content-Type: multipart/alternative; boundary=s\r\n\r\n--s\r\n"
    raw += b"Content-Type: text/plain\r\n\r\ntext\r\n--s--\r\n\r\n--s\r\n"
    raw += b"Content-Type: application/zip; name=a.zip\r\n\r\nPK\r\n--s--\r\n"
    parsed = parse_message(raw)
    assert parsed.plain == "text"
    assert [a.file_name for a in parsed.attachments] == ["a.zip"]


def test_overlong_lines_and_boundaries_are_survived() -> None:
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=" + b"b" * 5000 + b"\r\n\r\n"
    raw += b"x" * 2_000_000 + b"\r\n--" + b"b" * 5000 + b"--\r\n"
    plain = renders(raw)["plain"]
    assert isinstance(plain, str) and plain.startswith("x" * 2_000_000)


def test_many_lookalike_delimiters_and_attribution_lines_are_survived() -> None:
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"\n--bX" * 200_000
    assert renders(raw)["attachments"] == []
    spam = HEAD + b"\r\n" + b"On On wrote wrote: >\r\nOn 1 x wrote:\r\n" * 100_000
    assert isinstance(renders(spam)["plain"], str)


def test_binary_garbage_and_empty_input_are_survived() -> None:
    assert renders(b"")["headers"] == {}
    assert renders(os.urandom(100_000) + bytes(range(256)) * 100)["attachments"] == []


def test_25_mb_attachment_adds_less_than_four_times_the_message_size() -> None:
    content = os.urandom(25 * 1024 * 1024)
    encoded = base64.encodebytes(content).replace(b"\n", b"\r\n")
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nsee attached\r\n"
    raw += b"--b\r\nContent-Type: application/octet-stream; name=big.bin\r\n"
    raw += b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--b--\r\n"
    del encoded
    for fmt in ("json", "multipart"):
        tracemalloc.start()
        payload = render(fmt, raw, parse_message(raw), envelope())
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 4 * len(raw), f"{fmt}: peak {peak} for a {len(raw)} byte message"
        if fmt == "multipart":
            assert form_parts(payload)[-1] == ("attachments[]", content)
        else:
            assert base64.b64encode(content) in payload.body
        del payload
