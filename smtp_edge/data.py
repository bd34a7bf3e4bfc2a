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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

END_OF_DATA = b".\r\n"
CRLF = b"\r\n"
KEEPALIVE_BYTES = 1 << 16
"""Bytes received between two resets of the idle timer while DATA streams in."""


class DataFlood(Exception):
    """The client sent far more than the size limit; the session is ended."""


@dataclass
class DataResult:
    content: bytearray | None  # None when the message was over the limit (nothing kept)
    size: int  # message bytes after dot-unstuffing, counted even past the limit


def flood_limit(max_bytes: int) -> int:
    """How far past the size limit a client may keep sending before being cut off."""
    return 2 * max_bytes + (1 << 20)


async def read_data(
    reader: asyncio.StreamReader, max_bytes: int, *, keepalive: Callable[[], None]
) -> DataResult:
    """Read up to the end-of-data line; raises DataFlood, or IncompleteReadError on EOF."""
    data: bytearray | None = bytearray()
    size = 0
    at_line_start = True
    unreported = 0
    cutoff = flood_limit(max_bytes)
    while True:
        try:
            line = await reader.readuntil(CRLF)
            complete = True
        except asyncio.LimitOverrunError as overrun:
            # No CRLF within the buffer limit: take what is safe to take (never half a CRLF).
            line = await reader.read(overrun.consumed)
            if not line:
                raise asyncio.IncompleteReadError(b"", None) from None
            complete = False
        if at_line_start:
            if complete and line == END_OF_DATA:
                break
            if line[:1] == b".":
                line = line[1:]
        at_line_start = complete
        size += len(line)
        if data is not None:
            if size <= max_bytes:
                data += line
            else:
                data = None
        elif size > cutoff:
            raise DataFlood(size)
        unreported += len(line)
        if unreported >= KEEPALIVE_BYTES:
            keepalive()
            unreported = 0
    return DataResult(data, size)
