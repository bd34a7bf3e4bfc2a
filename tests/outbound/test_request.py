"""Reading a sending request: every field of spec/outbound.md, and each refusal's text."""

from __future__ import annotations

import base64
import random
from email.utils import getaddresses, parseaddr

import pytest

from provider.outbound.errors import (
    BlockedAttachment,
    HeaderInjection,
    InvalidAddress,
    InvalidField,
    MessageRefused,
    NoBody,
    TooManyRecipients,
)
from provider.outbound.request import address_pairs, bare_address, read_request

BASE = {"from": "Shop <orders@shop.example>", "to": "ann@example.com", "plain": "Hello"}


def _read(**fields):
    return read_request({**BASE, **fields})


def test_a_minimal_message_reads_with_its_defaults() -> None:
    request = read_request(BASE)
    assert request.sender == "Shop <orders@shop.example>"
    assert (request.sender_address, request.sender_domain) == ("orders@shop.example", "shop.example")
    assert request.to == ("ann@example.com",) and request.cc == ()
    assert (request.priority, request.test_mode, request.tags) == ("standard", False, ())


def test_to_cc_and_tags_take_a_comma_separated_string_or_a_list() -> None:
    request = _read(
        to='ann@example.com, "Bo, B." <bo@example.com>',
        cc=["cy@example.com", "Ann again <ANN@example.com>"],
        tags="welcome, onboarding,welcome",
    )
    assert request.to == ("ann@example.com", '"Bo, B." <bo@example.com>')
    assert request.recipients == ["ann@example.com", "bo@example.com", "cy@example.com"]
    assert request.tags == ("welcome", "onboarding")
    assert _read(tags=["a", "b,c"]).tags == ("a", "b", "c")


def test_headers_take_a_string_or_a_list_of_strings() -> None:
    request = _read(headers={"X-Order": "42", "X-Tag": ["a", "b"]})
    assert request.headers == (("X-Order", "42"), ("X-Tag", "a"), ("X-Tag", "b"))


def test_the_subject_field_overrides_a_subject_header() -> None:
    assert _read(subject="Field", headers={"Subject": "Header"}).headers == ()
    assert _read(headers={"Subject": "Header"}).headers == (("Subject", "Header"),)


def test_attachments_are_decoded_and_a_content_id_makes_one_inline() -> None:
    request = _read(
        attachments=[
            {"file_name": "logo.png", "content": base64.b64encode(b"\x89PNG").decode(),
             "content_type": "image/png", "content_id": "logo"},
            {"file_name": "terms.pdf", "content": base64.b64encode(b"%PDF").decode(),
             "content_type": "application/pdf"},
        ]
    )
    logo, terms = request.attachments
    assert (logo.content, logo.inline, logo.content_id) == (b"\x89PNG", True, "logo")
    assert (terms.content, terms.inline) == (b"%PDF", False)


@pytest.mark.parametrize("priority", ["priority", "standard", "digest", "Digest", None])
def test_each_priority_is_accepted(priority) -> None:
    assert _read(priority=priority).priority == (priority or "standard").lower()


def test_an_api_id_field_echoed_back_is_ignored() -> None:
    assert _read(id="ignored").to == ("ann@example.com",)


@pytest.mark.parametrize(
    ("fields", "error", "text"),
    [
        ({"plain": None}, NoBody, "body not found"),
        ({"plain": ""}, NoBody, "body not found"),
        ({"to": [f"r{i}@example.com" for i in range(21)]}, TooManyRecipients, "at most 20"),
        ({"to": [f"r{i}@example.com" for i in range(15)], "cc": [f"c{i}@example.com" for i in range(6)]},
         TooManyRecipients, "at most 20"),
        ({"attachments": [{"file_name": "run.EXE", "content": "AAAA"}]}, BlockedAttachment, ".exe files"),
        ({"attachments": [{"file_name": "a.txt", "content": "not base64!"}]}, InvalidField, "base64"),
        ({"attachments": [{"file_name": "a.txt", "content": "QUJD\nREVG"}]}, InvalidField, "base64"),
        ({"headers": {"X-A": "one\r\nBcc: victim@example.com"}}, HeaderInjection, "X-A header"),
        ({"headers": {"X-A\nB": "v"}}, HeaderInjection, "header name"),
        ({"to": "ann@example.com\r\nBcc: victim@example.com"}, HeaderInjection, "to address"),
        ({"from": "a@shop.example\nBcc: x@example.com"}, HeaderInjection, "from address"),
        ({"subject": "Hi\r\nBcc: x@example.com"}, HeaderInjection, "subject"),
        ({"priority": "urgent"}, InvalidField, "priority must be one of priority, standard, digest"),
        ({"to": 42}, InvalidField, "to must be a string or a list of strings"),
        ({"headers": ["X-A: b"]}, InvalidField, "headers must be an object"),
        ({"headers": {"X-A": 1}}, InvalidField, "must be a string"),
        ({"headers": {"From": "x@example.com"}}, InvalidField, "From is set from the request"),
        ({"test_mode": "yes"}, InvalidField, "test_mode must be true or false"),
        ({"attachements": []}, InvalidField, "Unknown field 'attachements'"),
        ({"to": "not an address"}, InvalidAddress, "invalid address"),
        ({"from": "a@x.example, b@x.example"}, InvalidAddress, "one valid address"),
        ({"from": None}, InvalidField, "from is required"),
        ({"to": None, "cc": "c@example.com"}, InvalidField, "cc needs a to"),
        ({"plain": "nul \x00 here"}, InvalidField, "NUL"),
        ({"raw": "From: a@b\r\n\r\nx"}, InvalidField, "leave out plain"),
    ],
)
def test_each_refusal_says_what_is_wrong(fields, error, text) -> None:
    with pytest.raises(error) as caught:
        _read(**fields)
    assert text in caught.value.text
    assert isinstance(caught.value, MessageRefused) and caught.value.http_status == 422


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidField, match="JSON object"):
        read_request(["from", "to"])


def test_the_smtp_reply_of_a_refusal_is_permanent() -> None:
    with pytest.raises(BlockedAttachment) as caught:
        _read(attachments=[{"file_name": "x.bat", "content": ""}])
    assert caught.value.smtp_reply.startswith("550 5.7.1 ")


def test_headers_with_raw_are_refused_rather_than_dropped() -> None:
    raw = "From: orders@shop.example\r\nTo: ann@example.com\r\nSubject: Raw\r\n\r\nHello\r\n"
    fields = {"from": "orders@shop.example", "to": "ann@example.com", "raw": raw}
    with pytest.raises(InvalidField) as caught:
        read_request({**fields, "headers": {"X-Order": "42"}})
    assert caught.value.text == "headers cannot be combined with raw: put them in the raw message"
    assert caught.value.http_status == 422
    for empty in (None, {}):
        assert read_request({**fields, "headers": empty}).raw == raw.encode()


_ADDRESS_SHAPES = [
    "a@b.com", "a.b+c@x.co.uk", "o'brien@example.com", "a..b@x.com", ".a@x.com", "a.@x.com", "a@b",
    "a@-b.com", "a@b-.com", "A_B@Sub.Example.COM", "x!#$%&'*+/=?^_`{|}~-@y.z", "a@b.c.", "a @b.com",
    "Name <a@b.com>", '"q"@b.com', "a@[1.2.3.4]", "a@b..com", "@b.com", "a@", "1@2.3", "a-b@c-d.e-f",
    "a@b.com, c@d.com", "a@b.com (comment)", "José <jose@example.com>", "a\u00e9@b.com", "",
]


@pytest.mark.parametrize("value", _ADDRESS_SHAPES)
def test_the_fast_address_reading_answers_as_the_email_package_does(value: str) -> None:
    assert address_pairs(value) == getaddresses([value])
    assert bare_address(value) == parseaddr(value)[1]


def test_the_fast_address_reading_answers_as_the_email_package_does_on_generated_addresses() -> None:
    alphabet = "aZ09.-_+!#'@ <>\"(),;:[]\\é"
    chooser = random.Random(20261201)
    for _ in range(5000):
        value = "".join(chooser.choice(alphabet) for _ in range(chooser.randint(1, 14)))
        assert address_pairs(value) == getaddresses([value]), value
        assert bare_address(value) == parseaddr(value)[1], value
