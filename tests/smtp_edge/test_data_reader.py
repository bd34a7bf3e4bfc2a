"""The DATA reader on its own, fed real bytes through an asyncio StreamReader."""

from __future__ import annotations

import asyncio

import pytest

from smtp_edge.data import DataFlood, DataResult, flood_limit, read_data


def read(
    stream: bytes, max_bytes: int = 1 << 20, *, limit: int = 1 << 16
) -> tuple[DataResult, int, bytes]:
    """Read DATA from `stream`; also return how often the idle timer was kept alive and what
    the reader still holds (the commands that follow DATA)."""

    async def run() -> tuple[DataResult, int, bytes]:
        reader = asyncio.StreamReader(limit=limit)
        reader.feed_data(stream)
        reader.feed_eof()
        kept_alive = 0

        def keepalive() -> None:
            nonlocal kept_alive
            kept_alive += 1

        result = await read_data(reader, max_bytes, keepalive=keepalive)
        return result, kept_alive, await reader.read()

    return asyncio.run(run())


def test_what_follows_the_end_of_data_stays_for_the_next_command() -> None:
    result, _, rest = read(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert result.content == b"Subject: x\r\n\r\nbody\r\n"
    assert rest == b"QUIT\r\n"


def test_over_the_limit_nothing_is_kept_but_the_size_is_counted() -> None:
    line = b"x" * 98 + b"\r\n"
    result, _, rest = read(line * 20 + b".\r\nNOOP\r\n", max_bytes=1000)
    assert result.content is None
    assert result.size == 2000
    assert rest == b"NOOP\r\n"


def test_the_idle_timer_is_kept_alive_while_a_big_message_streams_in() -> None:
    line = b"y" * 1022 + b"\r\n"
    _, kept_alive, _ = read(line * 1024 + b".\r\n")  # 1 MiB
    assert kept_alive == 16


def test_a_client_sending_far_past_the_limit_is_cut_off() -> None:
    line = b"z" * 1022 + b"\r\n"
    count = flood_limit(1000) // len(line) + 2
    with pytest.raises(DataFlood):
        read(line * count + b".\r\n", max_bytes=1000)


def test_a_line_longer_than_the_buffer_limit_is_kept_whole_and_never_split_at_crlf() -> None:
    long_line = b"a" * 300 + b"\r" + b"b" * 300 + b"\r\n"
    result, _, _ = read(b"." + long_line + b".\r\n", limit=64)
    assert result.content == long_line


def test_eof_inside_data_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        read(b"Subject: cut\r\n\r\nhalf")
