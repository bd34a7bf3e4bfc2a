"""Every file of the shared corpus parses and renders to valid JSON and valid multipart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from provider.inbound import parse_message, render

from .samples import CORPUS, corpus_files, corpus_part, envelope, form_parts, parse_form

HEADER_LINE = re.compile(rb"^[\x21-\x39\x3b-\x7e]+[ \t]*:")

corpus_part()


def looks_like_a_message(raw: bytes) -> bool:
    first = raw.lstrip(b" \t\r\n").split(b"\n", 1)[0]
    return bool(HEADER_LINE.match(first)) or first.startswith(b"From ")


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_file_renders_valid_json_and_multipart(path: Path) -> None:
    raw = path.read_bytes()
    parsed = parse_message(raw)
    document = json.loads(render("json", raw, parsed, envelope()).body)
    assert set(document) == {"headers", "envelope", "plain", "html", "reply_plain", "attachments"}
    assert isinstance(document["attachments"], list)
    for attachment in document["attachments"]:
        assert isinstance(attachment["content"], str) and "\n" not in attachment["content"]
        assert attachment["disposition"] in ("attachment", "inline")
    form, files = parse_form(render("multipart", raw, parsed, envelope()))
    assert form["envelope[md5]"] == parsed.md5
    assert [f.filename for f in files.getlist("attachments[]")] == [a.file_name for a in parsed.attachments]
    assert dict(form_parts(render("raw", raw, parsed, envelope())))["message"] == raw
    if looks_like_a_message(raw):
        assert document["headers"], "a message's headers must not be lost"


def test_corpus_is_not_empty() -> None:
    assert len(corpus_files()) > 200
