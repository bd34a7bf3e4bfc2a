"""Shared helpers for the inbound domain tests: envelopes, message builders, real form parsing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.formparser import parse_form_data
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData
from werkzeug.test import create_environ

from provider.inbound import Envelope, Payload, SpfResult

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def corpus_part(path: Path = CORPUS) -> Path:
    """`path` in the real-world corpus, for a test (or a module, at import) to read. Without the
    corpus beside the checkout the test is skipped: a local run may lack it, and CI refuses to
    start without it (tests/conftest.py). A part missing from a corpus that is there is a failure,
    not a skip, so a renamed file cannot turn its tests off quietly."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared/corpus is not beside the checkout ({CORPUS})", allow_module_level=True)
    assert path.exists(), f"{path} is missing from the corpus"
    return path


def envelope(**overrides: object) -> Envelope:
    fields: dict[str, object] = {
        "to": "to@example.com",
        "recipients": ["to@example.com", "another@example.com"],
        "mail_from": "from@example.com",
        "helo_domain": "localhost",
        "remote_ip": "127.0.0.1",
        "spf": SpfResult("pass", "example.com"),
        "tls": True,
        "tls_cipher": "TLSv1.3",
    }
    fields.update(overrides)
    return Envelope(**fields)  # type: ignore[arg-type]


def crlf(text: str) -> bytes:
    """A message written with LF line ends in a test, sent as SMTP does (CRLF)."""
    return text.encode("utf-8").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def message(headers: str, body: str) -> bytes:
    return crlf(headers.strip("\n") + "\n\n" + body)


def parse_form(payload: Payload) -> tuple[MultiDict[str, str], MultiDict[str, FileStorage]]:
    """The body as a WSGI app (Werkzeug's form parser) sees it."""
    environ = create_environ(
        method="POST",
        input_stream=io.BytesIO(payload.body),
        content_type=payload.content_type,
        content_length=len(payload.body),
    )
    _, form, files = parse_form_data(environ, silent=False)
    return form, files


def form_parts(payload: Payload) -> list[tuple[str, bytes]]:
    """(name, exact bytes) of every part, in order, from Werkzeug's low-level decoder."""
    boundary = payload.content_type.split("boundary=", 1)[1].encode("ascii")
    decoder = MultipartDecoder(boundary)
    decoder.receive_data(payload.body)
    decoder.receive_data(None)
    parts: list[tuple[str, bytes]] = []
    name = ""
    data = bytearray()
    while not isinstance(event := decoder.next_event(), NeedData | Epilogue):
        if isinstance(event, Field | File):
            name = event.name
            data = bytearray()
        elif isinstance(event, Data):
            data += event.data
            if not event.more_data:
                parts.append((name, bytes(data)))
    assert isinstance(event, Epilogue), "the body must end with the close delimiter"
    return parts


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md")
