"""Edges of the target-verdict and signature rules that a mutation of the code would move.

Each test here exists because changing one constant in production left the rest of the suite
green: the whole 4xx range is permanent (not only the codes users send most), and the signature's
timestamp is the time of the POST (a receiver checks it against its own clock).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from provider.inbound import verify_signature

from .conftest import EdgeThread, Mailbox, Target, history, message, send, smtp_error


@pytest.mark.parametrize("status", [400, 410, 499])
def test_every_4xx_from_the_target_is_a_permanent_refusal(
    status: int,
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    db_session: Session,
) -> None:
    box = mailbox(f"/status/{status}?reason=No%20thanks")
    code, text = smtp_error(edge, [box.address], message())
    assert (code, text) == (550, f"5.0.0 Target rejected the message (HTTP {status}): No thanks")
    (row,) = history(db_session)
    assert (row.status, row.http_status) == (str(status), status)


@pytest.mark.parametrize("status", [100, 600, 999])
def test_a_code_outside_2xx_to_5xx_is_a_temporary_failure(
    status: int, edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox(f"/status/{status}")
    code, _ = smtp_error(edge, [box.address], message())
    assert code == 450


def _now() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


def test_the_signature_is_dated_at_the_time_of_the_post(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox]
) -> None:
    box = mailbox("/status/200")
    before = _now()
    send(edge, [box.address], message())
    after = _now()
    (post,) = target.requests
    signature = post.header("x-cloudmailin-signature")
    assert signature is not None
    signed_at = int(signature.split(",")[0].removeprefix("t="))
    assert int(before) <= signed_at <= after
    # A receiver checks against its own clock with a tolerance, as CloudMailin's docs advise.
    assert verify_signature(box.signing_secret, signature, post.body, tolerance_s=300, now=after)
