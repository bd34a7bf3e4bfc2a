"""The SPF result handed to the payload when the check itself cannot give one."""

from __future__ import annotations

import asyncio
import logging

import pytest

from provider.inbound import SpfResult
from smtp_edge.transaction import SessionFacts, spf_verdict

FACTS = SessionFacts(helo="client.example", remote_ip="127.0.0.1", tls=False, tls_protocol=None)


def _verdict(check: object) -> SpfResult:
    async def run() -> SpfResult:
        task = asyncio.ensure_future(check) if check is not None else None  # type: ignore[arg-type]
        return await spf_verdict(task, "someone@sender.example", FACTS)

    return asyncio.run(run())


def test_a_crashed_check_is_a_temperror_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def crash() -> SpfResult:
        raise RuntimeError("resolver bug")

    with caplog.at_level(logging.ERROR, logger="smtp_edge.transaction"):
        result = _verdict(crash())
    assert result == SpfResult("temperror", "sender.example")
    (record,) = caplog.records
    assert "sender.example" in record.getMessage() and record.exc_info is not None


def test_a_check_stopped_before_it_answered_is_a_temperror() -> None:
    async def run() -> SpfResult:
        task = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        task.cancel()
        return await spf_verdict(task, "someone@sender.example", FACTS)  # type: ignore[arg-type]

    assert asyncio.run(run()) == SpfResult("temperror", "sender.example")


def test_no_check_started_is_none() -> None:
    assert _verdict(None) == SpfResult("none", "sender.example")
