import pytest

from provider.plans import MB, PLANS, UnknownPlan, plan_named


def test_catalogue_matches_design_table():
    assert PLANS["free"].inbound_per_month == 200
    assert PLANS["starter"].max_message_bytes == 25 * MB
    assert PLANS["premium"].custom_domains == 10
    assert PLANS["corp2m"].history_days == 365
    assert not PLANS["test"].stores


def test_plan_names_may_carry_the_addon_prefix():
    assert plan_named("cloudmailin:starter").name == "starter"


def test_missing_plan_is_the_default_free_plan():
    assert plan_named(None).name == "free"


def test_unknown_plan_lists_the_known_ones():
    with pytest.raises(UnknownPlan, match="free, test, starter"):
        plan_named("platinum")
