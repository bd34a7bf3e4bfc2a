"""Reading the DATA section: only CRLF "." CRLF ends it (RFC 5321 section 4.1.1.4).

The stream is read line by line, a line being bytes up to and including CRLF. A bare LF or a
bare CR is not a line end, wherever it appears: it stays inside the line, becomes part of the
message the target receives, and can never end DATA. So the SMTP smuggling terminators
(`\\n.\\n`, `\\n.\\r\\n`, `\\r.\\r`, `\\r\\n.\\n`, ...) cannot split one message into two; a
smuggled "second message" is delivered, inertly, as body text of the first. Dot-unstuffing
(section 4.5.2) likewise applies only at the start of a real (CRLF-delimited) line.

Lines longer than the reader's buffer limit arrive in pieces and are kept whole (RFC 5321's
1000-octet line limit is widely exceeded by real mail, and refusing it bounces legitimate
messages); the message size limit bounds everything. Past that limit nothing more is stored:
the rest is read and counted only, so the reply can come at the end of DATA as the RFC
expects, and a client that keeps sending far past the limit is cut off.

The message is gathered in an `io.BytesIO`, whose `getvalue()` hands over its own buffer as the
`bytes` object (CPython trims it in place and shares it: no copy when nothing else has a view on
it), so the message exists once. A `bytearray` would need `bytes(...)` at the end, which had both
copies alive at once: 2x a 34 MB message in the edge's RSS (bench/stores.py).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass

END_OF_DATA = b".\r\n"
CRLF = b"\r\n"
KEEPALIVE_BYTES = 1 << 16
"""Bytes received between two resets of the idle timer while DATA streams in."""


class DataFlood(Exception):
    """The client sent far more than the size limit; the session is ended."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size  # bytes received when the client was cut off


@dataclass
class DataResult:
    content: bytes | None  # None when the message was over the limit (nothing kept)
    size: int  # message bytes after dot-unstuffing, counted even past the limit


def flood_limit(max_bytes: int) -> int:
    """How far past the size limit a client may keep sending before being cut off."""
    return 2 * max_bytes + (1 << 20)


async def read_data(
    reader: asyncio.StreamReader, max_bytes: int, *, keepalive: Callable[[], None]
) -> DataResult:
    """Read up to the end-of-data line; raises DataFlood, or IncompleteReadError on EOF."""
    sink = _Sink(max_bytes, keepalive)
    # How much of CRLF "." the bytes taken so far end with: a real line start is `matched == 2`.
    # DATA begins at a line start.
    matched = 2
    while True:
        if matched == 0:
            # Everything up to the next CRLF "." in one piece: the lines in between need nothing.
            try:
                piece = await reader.readuntil(LINE_START_DOT)
            except asyncio.LimitOverrunError as overrun:
                # In pieces of at most KEEPALIVE_BYTES; one that ends inside a CRLF "." is
                # finished byte by byte below.
                piece = await reader.read(min(overrun.consumed, KEEPALIVE_BYTES))
                if not piece:
                    raise asyncio.IncompleteReadError(b"", None) from None
                sink.take(piece)
                matched = _crlf_suffix(piece)
                continue
            sink.take(piece[:-1])
        elif matched == 1 or (byte := await reader.readexactly(1)) != b".":
            # Byte by byte only where a piece ended inside (or just after) a CRLF.
            if matched == 1:
                byte = await reader.readexactly(1)
            sink.take(byte)
            matched = 2 if byte == b"\n" and matched == 1 else 1 if byte == b"\r" else 0
            continue
        # A dot starts this line: the line "." ends DATA, any other loses the dot (unstuffing).
        byte = await reader.readexactly(1)
        if byte == b"\r":
            after = await reader.readexactly(1)
            if after == b"\n":
                return sink.result()
            sink.take(byte + after)
            matched = 1 if after == b"\r" else 0
        else:
            sink.take(byte)
            matched = 0


LINE_START_DOT = CRLF + b"."


def _crlf_suffix(data: bytes) -> int:
    if data.endswith(CRLF):
        return 2
    return 1 if data.endswith(b"\r") else 0


class _Sink:
    """Keeps the message up to the limit, counts it all, cuts off a flood, feeds the idle timer."""

    def __init__(self, max_bytes: int, keepalive: Callable[[], None]) -> None:
        self.data: io.BytesIO | None = io.BytesIO()
        self.size = 0
        self.max_bytes = max_bytes
        self.cutoff = flood_limit(max_bytes)
        self.keepalive = keepalive
        self.unreported = 0

    def take(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.data is not None:
            if self.size <= self.max_bytes:
                self.data.write(piece)
            else:
                self.data = None
        elif self.size > self.cutoff:
            raise DataFlood(self.size)
        crossed, self.unreported = divmod(self.unreported + len(piece), KEEPALIVE_BYTES)
        for _ in range(crossed):
            self.keepalive()

    def result(self) -> DataResult:
        if self.data is None:
            return DataResult(None, self.size)
        content = self.data.getvalue()  # the buffer itself, not a copy (see the docstring)
        self.data.close()
        self.data = None
        return DataResult(content, self.size)
