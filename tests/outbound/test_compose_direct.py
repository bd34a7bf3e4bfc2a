"""The direct composer writes exactly what the email package writes for the shapes it takes, and
leaves every other shape to the email package."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from provider.outbound.compose import compose, compose_simple, compose_with_email, header_values
from provider.outbound.outgoing import from_api
from provider.outbound.request import read_request

NOW = datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC)
ID = "5b2f6c9e-1f0a-4a53-9c1e-0d8d1c2a7f10"
BOUNDARY = re.compile(rb"={15}\d{19}==")
PDF = {"file_name": "receipt.pdf", "content_type": "application/pdf",
       "content": base64.b64encode(bytes(range(256)) * 7).decode()}
CSV = {"file_name": "list-2026_12.csv", "content_type": "text/csv",
       "content": base64.b64encode(b"a,b\n").decode()}
EMPTY = {"file_name": "empty.bin.txt", "content": ""}
LONG_LINE = "word " * 40
SIMPLE = [
    {"plain": "Hello"},
    {"html": "<p>Hello</p>"},
    {"plain": "Hello", "html": "<p>Hello</p>"},
    {"markdown": "# Hi\n\n**bold**"},
    {"plain": "Line one\nline two\r\nthree\rfour\n\n", "attachments": [PDF]},
    {"html": "<b>x</b>", "attachments": [PDF, CSV]},
    {"plain": "a", "html": "<i>b</i>", "attachments": [CSV, EMPTY]},
    {"plain": "", "html": "<p>only html</p>"},
    {"plain": LONG_LINE},
    {"plain": LONG_LINE * 3 + "\n" + "short\n" * 20},
    {"plain": "=" * 200},
    {"plain": "Grüße, ☃\n" * 3, "html": "<p>Grüße</p>" + "é" * 100},
    {"plain": "tab\there, form\x0cfeed, trailing space \nFrom the start\n.\n"},
    {"plain": "x", "subject": "Your order 12 (shipped) [ok] #1 <soon>"},
    {"plain": "x", "headers": {"X-Campaign": "spring-2027", "List-Unsubscribe": "<https://s.example/u?a=1>"}},
    {"plain": "x", "headers": {"X-Many": ["one", "two"]}, "cc": ["Bo <bo@example.com>", "cy@example.org"]},
    {"plain": "x", "to": ["Ann Lee <ann@example.com>", "b.c+d@mail.example.co"], "from": "o.k@shop.example"},
    {"plain": "x", "headers": {"Subject": "From headers"}},
    {"plain": "x", "attachments": [{**CSV, "content_id": "logo"}]},
    {"plain": "x", "subject": "s" * (78 - len("Subject: "))},
]
NOT_SIMPLE = [
    {"plain": "x", "subject": "Größe"},
    {"plain": "x", "subject": "s" * (79 - len("Subject: "))},
    {"plain": "x", "subject": "two  spaces"},
    {"plain": "x", "subject": " leading space"},
    {"plain": "x", "subject": "=?utf-8?q?encoded?="},
    {"plain": "x", "from": '"Shop, Inc." <orders@shop.example>'},
    {"plain": "x", "from": "Jörg <j@shop.example>"},
    {"plain": "x", "to": [f"person{n}@example.com" for n in range(5)]},
    {"plain": "x", "headers": {"Reply-To": "help@shop.example"}},
    {"plain": "x", "headers": {"Date": "Mon, 01 Dec 2026 09:30:00 +0000"}},
    {"plain": "x", "headers": {"X-Long": "v" * 80}},
    {"plain": "x", "attachments": [{**PDF, "file_name": "my receipt.pdf"}]},
    {"plain": "x", "attachments": [{**PDF, "file_name": "reçu.pdf"}]},
    {"plain": "x", "attachments": [{**PDF, "file_name": "r" * 60 + ".pdf"}]},
    {"plain": "x", "html": '<img src="cid:logo">', "attachments": [{**CSV, "content_id": "logo"}]},
]


def _request(fields: dict[str, object]):
    return read_request({"from": "Shop <orders@shop.example>", "to": "ann@example.com", **fields})


def _boundaries_named(raw: bytes) -> bytes:
    """Each random boundary replaced by its rank of first appearance: B0, B1..."""
    names: dict[bytes, bytes] = {}
    return BOUNDARY.sub(lambda m: names.setdefault(m.group(), b"B%d" % len(names)), raw)


@pytest.mark.parametrize("fields", SIMPLE)
@pytest.mark.parametrize("now", [NOW, datetime(2027, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5)))])
def test_the_direct_composer_writes_the_email_packages_bytes(
    fields: dict[str, object], now: datetime
) -> None:
    request = _request(fields)
    direct = compose_simple(request, ID, now)
    assert direct is not None
    assert _boundaries_named(direct) == _boundaries_named(compose_with_email(request, ID, now))
    assert _boundaries_named(compose(request, ID, now)) == _boundaries_named(direct)


@pytest.mark.parametrize("fields", NOT_SIMPLE)
def test_shapes_the_email_package_rewrites_are_left_to_it(fields: dict[str, object]) -> None:
    request = _request(fields)
    assert compose_simple(request, ID, NOW) is None
    by_email = compose_with_email(request, ID, NOW)
    assert _boundaries_named(compose(request, ID, NOW)) == _boundaries_named(by_email)


def test_a_boundary_never_appears_inside_a_part() -> None:
    raw = compose(_request({"plain": "x", "attachments": [PDF]}), ID, NOW)
    boundary = BOUNDARY.search(raw)
    assert boundary is not None
    assert raw.count(b"--" + boundary.group()) == 3  # opening, closing, and once between the two parts


@pytest.mark.parametrize("fields", [*SIMPLE, *NOT_SIMPLE])
def test_the_stored_subject_and_message_id_are_what_the_head_says(fields: dict[str, object]) -> None:
    request = _request(fields)
    outgoing = from_api(request, ID, NOW)
    assert outgoing.subject == (request.subject or next(iter(header_values(outgoing.raw, "Subject")), None))
    assert outgoing.message_id_header == header_values(outgoing.raw, "Message-ID")[0]
