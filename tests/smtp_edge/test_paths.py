"""The edge's fast reading of MAIL/RCPT paths gives exactly what aiosmtpd's own parser gives."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP

from smtp_edge.protocol import EdgeSMTP, MxSMTP

CASES = [
    "<a@b.c>", " <a@b.c> SIZE=1", "\t<a@b.c>\tSIZE=1 BODY=8BITMIME", "<a.b+tag@x-y.example.com>BODY=8BITMIME",
    "<A@B.C>  ", "<a@b>", "<0123456789abcdef0123+x@cloudmailin.test> SIZE=5000",
    "<someone@sender.example> (a comment) SIZE=1", "<a@b.c>(c)", "<>", "<> SIZE=10",
    "<a..b@c.d>", "<.a@b.c>", "<a.@b.c>", "<a@-b.c>", "<a@b-.c>", "<a@b..c>", "<a@[127.0.0.1]>",
    '<"quoted local"@b.c>', "<üser@exämple.com>", "<a@b.c", "a@b.c", "a@b.c SIZE=1", "<@relay:a@b.c>",
    "<" + "x" * 64 + "@b.c>", "<" + "x" * 65 + "@b.c>",
    "<a@" + "d" * 63 + ".com>", "<a@" + "d" * 64 + ".com>",
    "<a b@c.d>", "<a@b.c> <x@y.z>", "", "   ",
]


@pytest.fixture
def edge_protocol() -> EdgeSMTP:
    class Handler:
        pass

    return MxSMTP(Handler(), on_open=lambda *_: None, on_close=lambda _: None, processing_timeout=1.0)


@pytest.mark.parametrize("arg", CASES)
def test_the_fast_path_reads_every_path_as_aiosmtpd_does(edge_protocol: EdgeSMTP, arg: str) -> None:
    assert edge_protocol._getaddr(arg) == SMTP._getaddr(edge_protocol, arg)
