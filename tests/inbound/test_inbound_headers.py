"""Header normalisation as spec/inbound.md describes it for `headers`."""

from __future__ import annotations

import json

from provider.inbound import parse_message, render
from provider.inbound.formats import header_fields

from .samples import envelope, message


def headers_of(raw: bytes) -> dict[str, str | list[str]]:
    return header_fields(parse_message(raw))


def test_names_are_lower_cased_with_dashes_as_underscores() -> None:
    raw = message("Message-ID: <a@b>\nX-Foo-Bar: 1\nMIME-Version: 1.0\nSUBJECT: hi", "x")
    assert headers_of(raw) == {
        "message_id": "<a@b>",
        "x_foo_bar": "1",
        "mime_version": "1.0",
        "subject": "hi",
    }


def test_header_present_once_is_a_string_even_received() -> None:
    raw = message("Received: from a by b\nSubject: s", "x")
    assert headers_of(raw)["received"] == "from a by b"


def test_repeated_header_is_a_list_top_most_first() -> None:
    raw = message("Received: by newest\nSubject: s\nReceived: by middle\nreceived: by oldest", "x")
    assert headers_of(raw)["received"] == ["by newest", "by middle", "by oldest"]


def test_folded_value_is_unfolded_by_deleting_the_line_break_only() -> None:
    raw = message("Subject: first\n  second\n\tthird", "x")
    assert headers_of(raw)["subject"] == "first  second\tthird"


def test_folding_with_bare_lf_is_unfolded_too() -> None:
    raw = b"Subject: one\n two\n\nbody"
    assert headers_of(raw)["subject"] == "one two"


def test_rfc2047_words_in_several_charsets_decode_to_utf8() -> None:
    raw = message(
        "Subject: =?UTF-8?B?w6lwYWlzc2V1cg==?= and =?iso-8859-1?q?caf=E9_cr=E8me?=\n"
        "From: =?KOI8-R?B?8NLJ18XU?= <p@example.com>",
        "x",
    )
    headers = headers_of(raw)
    assert headers["subject"] == "épaisseur and café crème"
    assert headers["from"] == "Привет <p@example.com>"


def test_adjacent_encoded_words_join_without_the_whitespace_between_them() -> None:
    # "é" (C3 A9) split across two words, as some senders do.
    raw = message("Subject: =?utf-8?B?w6Q=?=\n =?utf-8?B?w6k=?= =?utf-8?Q?x?= plain", "x")
    assert headers_of(raw)["subject"] == "äéx plain"


def test_multibyte_character_split_across_words_is_rejoined() -> None:
    raw = message("Subject: =?utf-8?Q?=C3?= =?utf-8?Q?=A9t=C3=A9?=", "x")
    assert headers_of(raw)["subject"] == "été"


def test_unknown_and_broken_charsets_in_encoded_words_do_not_crash() -> None:
    raw = message(
        "Subject: =?x-unknown?Q?caf=C3=A9?= =?base64?B?aGk=?= =?utf-8?B?!!!w6k?=\nX-Bad: =?utf-8?Q?=FF=FE?=",
        "x",
    )
    headers = headers_of(raw)
    # Unknown charsets fall back to UTF-8 sniffing; a non-text codec is treated as unknown.
    assert headers["subject"] == "caféhié"
    assert headers["x_bad"] == "\ufffd\ufffd"


def test_raw_8bit_header_values_are_read_as_utf8_else_windows_1252() -> None:
    raw = b"Subject: caf\xc3\xa9\r\nX-Latin: caf\xe9\r\n\r\nbody"
    headers = headers_of(raw)
    assert headers["subject"] == "café"
    assert headers["x_latin"] == "café"


def test_nul_bytes_in_headers_become_replacement_characters() -> None:
    raw = b"Subject: a\x00b\r\n\r\nbody"
    assert headers_of(raw)["subject"] == "a\ufffdb"


def test_header_order_follows_first_occurrence_in_the_json() -> None:
    raw = message("Subject: s\nReceived: r1\nFrom: f\nReceived: r2", "x")
    body = render("json", raw, parse_message(raw), envelope()).body
    assert list(json.loads(body)["headers"]) == ["subject", "received", "from"]


def test_mbox_from_line_and_leading_whitespace_line_are_skipped() -> None:
    raw = b"From someone@example.com Mon Feb  8 02:53:47 1993\r\n   \r\nSubject: s\r\n\r\nbody"
    parsed = parse_message(raw)
    assert parsed.headers == [("subject", "s")]
    assert parsed.plain == "body"


def test_a_line_that_is_no_header_starts_the_body() -> None:
    parsed = parse_message(b"Subject: s\r\nThis is body text\r\nmore")
    assert parsed.headers == [("subject", "s")]
    assert parsed.plain == "This is body text\nmore"


def test_convenience_fields_take_the_first_occurrence() -> None:
    raw = message("Message-ID: <1@x>\nSubject: =?utf-8?q?=C3=A9?=\nFrom: a@x\nFrom: b@x", "x")
    parsed = parse_message(raw)
    assert (parsed.message_id, parsed.subject, parsed.from_) == ("<1@x>", "é", "a@x")


def test_missing_convenience_headers_are_none() -> None:
    parsed = parse_message(b"X: y\r\n\r\nbody")
    assert (parsed.message_id, parsed.subject, parsed.from_) == (None, None, None)
