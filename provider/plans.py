"""The plan catalogue: the one table every limit in the product is read from (DESIGN.md, "Plans")."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    name: str
    inbound_per_month: int
    max_message_bytes: int
    custom_domains: int
    outbound_per_month: int
    history_days: int
    stores: bool


_PLANS = (
    Plan("free", 200, 10 * MB, 0, 200, 7, False),
    Plan("test", 200, 10 * MB, 0, 200, 7, False),
    Plan("starter", 3_000, 25 * MB, 1, 3_000, 30, True),
    Plan("premium", 30_000, 30 * MB, 10, 30_000, 90, True),
    Plan("corp2m", 2_000_000, 40 * MB, 100, 2_000_000, 365, True),
)

PLANS: dict[str, Plan] = {plan.name: plan for plan in _PLANS}
DEFAULT_PLAN = "free"
TEST_PLAN = "test"
"""The plan whose messages are all test mode: recorded, never delivered, never counted."""
LARGEST_MESSAGE_BYTES = max(plan.max_message_bytes for plan in _PLANS)


class UnknownPlan(LookupError):
    """Raised for a plan name that is not in the catalogue (the partner API answers 422)."""


def plan_named(name: str | None) -> Plan:
    """Look a plan up by the name Heroku sends, which may carry the add-on prefix (`cloudmailin:starter`)."""
    if not name:
        return PLANS[DEFAULT_PLAN]
    short = name.split(":", 1)[-1].strip().lower()
    try:
        return PLANS[short]
    except KeyError:
        known = ", ".join(PLANS)
        raise UnknownPlan(f"Unknown plan {name!r}; plans are: {known}") from None
