"""A multipart/form-data body built in one `b"".join`, as browsers encode it (RFC 7578).

Field and file names are escaped the way the HTML standard says browsers do (`"` -> %22,
CR -> %0D, LF -> %0A) and otherwise sent as UTF-8, which is what Rack, busboy/multer, PHP and
Werkzeug expect. The boundary is random and checked against every value, so no content can end
a part early.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


@dataclass(frozen=True)
class FilePart:
    name: str
    file_name: str
    content_type: str
    content: bytes


def _quote(value: str) -> bytes:
    return value.translate(_ESCAPES).encode("utf-8", "replace")


def _boundary(values: list[bytes]) -> bytes:
    while True:
        boundary = b"----CloudMailinFormBoundary" + secrets.token_hex(16).encode("ascii")
        if not any(boundary in value for value in values):
            return boundary


def encode_form(fields: list[tuple[str, str | bytes]], files: list[FilePart]) -> tuple[str, bytes]:
    """(Content-Type header value, body). String values are sent as UTF-8, bytes as they are."""
    values = [v if isinstance(v, bytes) else v.encode("utf-8", "replace") for _, v in fields]
    boundary = _boundary(values + [f.content for f in files])
    dash = b"--" + boundary
    chunks: list[bytes] = []
    for (name, _), value in zip(fields, values, strict=True):
        chunks += [
            dash,
            b'\r\nContent-Disposition: form-data; name="',
            _quote(name),
            b'"\r\n\r\n',
            value,
            b"\r\n",
        ]
    for part in files:
        chunks += [
            dash,
            b'\r\nContent-Disposition: form-data; name="',
            _quote(part.name),
            b'"; filename="',
            _quote(part.file_name),
            b'"\r\nContent-Type: ',
            _quote(part.content_type),
            b"\r\n\r\n",
            part.content,
            b"\r\n",
        ]
    chunks += [dash, b"--\r\n"]
    return "multipart/form-data; boundary=" + boundary.decode("ascii"), b"".join(chunks)
