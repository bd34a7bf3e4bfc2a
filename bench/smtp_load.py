"""The load tool of bench/inbound.py: test messages and a small asyncio SMTP client.

Written here rather than borrowed (smtplib in threads, smtp-source) because one process then
holds hundreds of sessions without threads fighting over the GIL, and the client times each step
itself: end of DATA -> final reply is what the edge adds, and no ready-made tool reports it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from dataclasses import dataclass

SENDER = "someone@sender.example"


def _b64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"


def build_message(bench_id: int, attachment: bytes, to: str, size: int = 0) -> bytes:
    """A text part plus one attachment; the text is padded so the whole is `size` bytes."""
    head = (
        f"From: Someone <{SENDER}>\r\nTo: {to}\r\nSubject: bench-id-{bench_id}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@sender.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b0undary"\r\n\r\n'
        "--b0undary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    tail = (
        b"--b0undary\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="report.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64_lines(attachment) + b"--b0undary--\r\n"
    )
    text = f"Hello, this is message bench-id-{bench_id}.\r\n".encode()
    filler = max(0, size - len(head) - len(tail) - len(text))
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    text += (line * (filler // len(line) + 1))[:filler]
    if filler:
        text = text[: len(text) - 2] + b"\r\n"
    return head + text + b"\r\n" + tail


# --- The asyncio SMTP client (the load tool) --------------------------------------------------


class SmtpError(Exception):
    pass


@dataclass
class Sent:
    ok: bool
    total: float  # MAIL FROM .. final reply, seconds
    after_data: float  # end of DATA .. final reply, seconds
    reply: str


class SmtpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> SmtpClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        client = cls(reader, writer)
        await client.expect(220)
        await client.command("EHLO client.sender.example", 250)
        return client

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise SmtpError("connection closed")
            lines.append(line.decode().rstrip())
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    async def expect(self, code: int) -> str:
        got, text = await self.reply()
        if got != code:
            raise SmtpError(text)
        return text

    async def command(self, line: str, code: int) -> str:
        self.writer.write(line.encode() + b"\r\n")
        return await self.expect(code)

    async def send(self, rcpt: str, data: bytes) -> Sent:
        """One transaction; `data` ends with CRLF and has no line starting with a dot."""
        start = time.perf_counter()
        await self.command(f"MAIL FROM:<{SENDER}> SIZE={len(data)}", 250)
        await self.command(f"RCPT TO:<{rcpt}>", 250)
        await self.command("DATA", 354)
        self.writer.write(data)
        self.writer.write(b".\r\n")
        await self.writer.drain()
        end_of_data = time.perf_counter()
        code, text = await self.reply()
        done = time.perf_counter()
        return Sent(code == 250, done - start, done - end_of_data, text)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.command("QUIT", 221)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def open_pool(port: int, size: int) -> asyncio.Queue[SmtpClient]:
    pool: asyncio.Queue[SmtpClient] = asyncio.Queue()
    for client in await asyncio.gather(*(SmtpClient.open(port) for _ in range(size))):
        pool.put_nowait(client)
    return pool


async def close_pool(pool: asyncio.Queue[SmtpClient]) -> None:
    clients = []
    while not pool.empty():
        clients.append(pool.get_nowait())
    await asyncio.gather(*(c.close() for c in clients))
