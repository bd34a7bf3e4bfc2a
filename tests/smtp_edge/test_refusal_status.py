"""What the history records for a message the edge refused itself (README, the inbound table):
the limit or parser that said no, never a permanent reply taken for a content refusal."""

import pytest

from provider.errors import (
    MessageTooBig,
    NoTarget,
    QuotaExceeded,
    TemporaryError,
    UnknownRecipient,
    UnprocessableMessage,
)
from smtp_edge.mx import refusal_status


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UnprocessableMessage(), "rejected_content"),
        (MessageTooBig(1024), "rejected_size"),
        (QuotaExceeded(), "rejected_quota"),
        (TemporaryError(), "local_error"),
    ],
)
def test_each_refusal_is_recorded_under_its_own_status(error, status):
    assert refusal_status(error) == status


@pytest.mark.parametrize("error", [NoTarget(), UnknownRecipient(), MessageTooBig(1024)])
def test_a_permanent_refusal_is_not_recorded_as_rejected_content_unless_the_parser_refused(error):
    assert refusal_status(error) != "rejected_content"
