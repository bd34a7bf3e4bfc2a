"""`reply_plain`: the new text of a reply, tested on talon's and email-reply-parser's fixtures."""

from __future__ import annotations

import pytest

from provider.inbound import parse_message
from provider.inbound.reply import MAX_LINES, extract_reply

from .samples import CORPUS, message

TALON_REPLIES = CORPUS / "talon" / "standard_replies"
ERP = CORPUS / "email-reply-parser"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared/corpus is not beside the checkout")


def erp(name: str) -> str | None:
    return extract_reply((ERP / f"{name}.txt").read_text(encoding="utf-8"))


def test_text_above_the_marker_is_the_reply() -> None:
    body = "Sounds good, see you then.\n\n### Reply Above This Line ###\n\nOld ticket text\n"
    assert extract_reply(body) == "Sounds good, see you then."


def test_marker_quoted_by_a_client_still_cuts_with_its_attribution() -> None:
    body = (
        "Thanks!\n\nOn Mon, Jan 16, 2012 at 5:00 PM, Support <s@example.com> wrote:\n\n"
        "> ### Reply above this line ###\n> Ticket #42 was updated\n"
    )
    assert extract_reply(body) == "Thanks!"


def test_quoted_history_and_attribution_are_removed() -> None:
    body = "Yes, Tuesday works.\n\nOn 2 Apr 2012, at 18:26, Bob <bob@example.com> wrote:\n> Tuesday?\n"
    assert extract_reply(body) == "Yes, Tuesday works."


def test_a_message_without_history_is_not_a_reply() -> None:
    # CloudMailin sends null for fresh mail; `plain` already carries its text.
    assert extract_reply("Just a note.\n\n-- \nAnn\n") is None
    assert extract_reply("Hello,\n\nthe report is attached.\n\nThanks,\nAnn\n") is None
    assert parse_message(message("Subject: Hello", "A fresh message.\n")).reply_plain is None


def test_the_history_of_a_reply_is_still_cut_when_its_text_has_a_signature() -> None:
    body = "Just a note.\n\n-- \nAnn\n\nOn Mon, 1 Jan 2024, Bob <b@x.com> wrote:\n> Hi\n"
    assert extract_reply(body) == "Just a note.\n\n-- \nAnn"


def test_reply_plain_is_null_when_nothing_is_found() -> None:
    assert extract_reply("> only\n> quoted text\n") is None
    assert extract_reply("   \n\n") is None
    assert parse_message(message("Subject: s", "> quoted only\n")).reply_plain is None


def test_reply_plain_comes_from_the_parsed_plain_text() -> None:
    raw = message("Subject: Re: x", "New text\n\nOn Mon, 1 Jan 2024, A <a@x.com> wrote:\n> old\n")
    assert parse_message(raw).reply_plain == "New text"


def test_inline_answers_between_quotes_are_kept() -> None:
    body = "On Tue, Apr 29, 2014 at 4:22 PM, Dev <d@x.com> wrote:\n> q1\n\nanswer 1\n\n> q2\n\nanswer 2\n"
    assert extract_reply(body) == "answer 1\n\nanswer 2"


def test_original_message_separator_and_outlook_header_block_cut_the_history() -> None:
    assert extract_reply("Hello\n\n-----Original Message-----\nFrom: a\nHi\n") == "Hello"
    outlook = "Hello\n\nFrom: Bob [mailto:b@x.com]\nSent: Monday\nTo: Ann\nSubject: Hi\n\nHi\n"
    assert extract_reply(outlook) == "Hello"


def test_ordinary_lines_that_resemble_history_are_not_history() -> None:
    body = "On your host run:\n\n  telnet 127.0.0.1\n\nFrom: the docs\nOne more: line\n"
    assert extract_reply(body) is None
    history = "\nOn Mon, 1 Jan 2024, Bob <b@x.com> wrote:\n> Run what?\n"
    assert extract_reply(body + history) == body.strip()


def test_history_below_the_scan_limit_is_not_looked_for() -> None:
    assert extract_reply("line\n" * MAX_LINES + "> quoted\n") is None


def test_lines_after_the_scan_limit_are_kept_when_the_history_was_not_cut() -> None:
    tail = "line\n" * MAX_LINES + "> still here\n"
    assert extract_reply("> question\nanswer\n" + tail) == ("answer\n" + tail).strip()


@needs_corpus
@pytest.mark.parametrize(
    "name",
    sorted(p.stem for p in TALON_REPLIES.glob("*.eml")) if TALON_REPLIES.is_dir() else [],
)
def test_talon_standard_replies(name: str) -> None:
    # talon's own expectation: "Hello", or the `<name>_reply_text` file (signatures kept).
    expected_file = TALON_REPLIES / f"{name}_reply_text"
    expected = expected_file.read_text().strip() if expected_file.exists() else "Hello"
    assert parse_message((TALON_REPLIES / f"{name}.eml").read_bytes()).reply_plain == expected


@needs_corpus
def test_talon_yahoo_share_block_attribution_with_dashes() -> None:
    parsed = parse_message((CORPUS / "talon" / "reply-quotations-share-block.eml").read_bytes())
    assert parsed.reply_plain is not None
    assert parsed.reply_plain.endswith("Joe XXX")


ERP_EXPECTED = {
    "email_1_4": "Awesome! I haven't had another problem with it.",
    "email_1_6": "I get proper rendering as well.\n\nSent from a magnificent torch of pixels",
    "email_1_7": ":+1:",
    "email_1_8": ("I will reply under this one\n\nand under this.\n\n--\nHey there, this is my signature"),
    "email_2_1": "Outlook with a reply",
    "email_2_2": "Outlook with a reply directly above line",
    "email_2_3": "Outlook with a reply above headers using unusual format",
    "email_gmail": "This is a test for inbox replying to a github message.",
    "email_headers_no_delimiter": "And another reply!",
    "pathological": (
        "I think you're onto something. I will try to fix the problem as soon as I\nget back to a computer."
    ),
}


@needs_corpus
@pytest.mark.parametrize("name", sorted(ERP_EXPECTED))
def test_email_reply_parser_fixture_replies(name: str) -> None:
    assert erp(name) == ERP_EXPECTED[name]


@needs_corpus
def test_email_reply_parser_interleaved_and_lookalike_fixtures() -> None:
    interleaved = erp("email_1_2") or ""
    assert interleaved.startswith("Hi,\n\nYou can list the keys for the bucket")
    assert ">" not in interleaved and "wrote:" not in interleaved
    assert "Russell Brown wrote" not in (erp("email_1_3") or "x wrote")
    not_on = erp("email_one_is_not_on") or ""
    assert "One outstanding question I had:" in not_on and "Dave Tapley" not in not_on
    for name in ("email_partial_quote_header", "greedy_on"):
        reply = erp(name) or ""
        assert reply.startswith("On your remote host you can run:")
        assert reply.endswith("the tunnel is not working.")
    assert erp("email_sig_delimiter_in_middle_of_line") is None  # not a reply


def test_many_on_words_without_wrote_are_not_a_reply() -> None:
    # The input that makes email-reply-parser's and mail-parser-reply's patterns run for
    # minutes (quadratic or worse in the line length) is ordinary text here.
    assert extract_reply("On x " * 200_000) is None
    overlong_attribution = "On x " * 200_000 + "wrote:"
    assert extract_reply(f"{overlong_attribution}\n> q\n") == overlong_attribution
