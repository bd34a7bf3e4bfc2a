"""smtp_edge/dkimpy_fast.py gives exactly what the dkimpy functions it replaces give."""

from __future__ import annotations

import random
from pathlib import Path

import dkim
import pytest

from smtp_edge.dkimpy_fast import _dkimpy_relaxed_body, relaxed_body, rfc822_parse
from tests.inbound.samples import CORPUS

PIECES = [b"a", b"word", b" ", b"  ", b"\t", b"\r\n", b"\r\n\r\n", b"\n", b"\r", b" \r\n", b"x\ty"]


def generated(seed: int) -> bytes:
    rng = random.Random(seed)
    return b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 30)))


def corpus_messages() -> list[bytes]:
    if not CORPUS.is_dir():
        return []
    return [p.read_bytes() for p in sorted(CORPUS.rglob("*")) if p.is_file()][:400]


EDGE_CASES = [b"", b"\r\n", b"\r\n\r\n", b"abc", b"abc\r\n", b"abc\r\n\r\n\r\n", b"a  b\r\n", b"a \r\n"]


@pytest.mark.parametrize("seed", range(300))
def test_relaxed_body_is_dkimpys_on_generated_bodies(seed: int) -> None:
    body = generated(seed)
    assert relaxed_body(body) == bytes(_dkimpy_relaxed_body(body))


@pytest.mark.parametrize("body", EDGE_CASES)
def test_relaxed_body_is_dkimpys_on_edge_cases(body: bytes) -> None:
    assert relaxed_body(body) == bytes(_dkimpy_relaxed_body(body))


def test_relaxed_body_is_dkimpys_on_corpus_bodies() -> None:
    for raw in corpus_messages():
        body = raw.partition(b"\r\n\r\n")[2].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert relaxed_body(body) == bytes(_dkimpy_relaxed_body(body))


def dkimpy_parse(message: bytes) -> object:
    try:
        return dkim.rfc822_parse(message)
    except (dkim.DKIMException, IndexError) as exc:
        return type(exc)


def fast_parse(message: bytes) -> object:
    try:
        return rfc822_parse(message)
    except (dkim.DKIMException, IndexError) as exc:
        return type(exc)


@pytest.mark.parametrize("seed", range(300))
def test_message_split_is_dkimpys_on_generated_messages(seed: int) -> None:
    rng = random.Random(seed)
    head = rng.choice([b"", b"From: a@b.example", b"From: a@b.example\r\nSubject: x\r\n y"])
    message = head + rng.choice([b"\r\n\r\n", b"\r\n", b"\n\n", b""]) + generated(seed)
    assert fast_parse(message) == dkimpy_parse(message)


def test_message_split_is_dkimpys_on_the_corpus() -> None:
    messages = corpus_messages()
    for raw in messages + [m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for m in messages]:
        assert fast_parse(raw) == dkimpy_parse(raw)


def test_the_corpus_is_there_for_these_comparisons() -> None:
    if Path(CORPUS).is_dir():
        assert len(corpus_messages()) > 100


HEADER_PIECES = [b"a", b"Subject", b" ", b"  ", b"\t", b"\r\n ", b"\r\n\t", b"x", b"\n", b"\r"]


@pytest.mark.parametrize("seed", range(300))
def test_relaxed_headers_are_dkimpys_on_generated_headers(seed: int) -> None:
    from smtp_edge.dkimpy_fast import _dkimpy_relaxed_headers, relaxed_headers

    rng = random.Random(seed)
    headers = [
        (rng.choice([b"Subject", b"FROM ", b"x-A"]),
         b"".join(rng.choice(HEADER_PIECES) for _ in range(rng.randrange(0, 12)))
         + rng.choice([b"\r\n", b"", b"\n"]))
        for _ in range(4)
    ]
    assert relaxed_headers(headers) == [tuple(h) for h in _dkimpy_relaxed_headers(headers)]


def test_relaxed_headers_are_dkimpys_on_the_corpus() -> None:
    from smtp_edge.dkimpy_fast import _dkimpy_relaxed_headers, relaxed_headers

    for raw in corpus_messages():
        parsed = fast_parse(raw)
        if isinstance(parsed, tuple):
            headers = parsed[0]
            assert relaxed_headers(headers) == [tuple(h) for h in _dkimpy_relaxed_headers(headers)]
