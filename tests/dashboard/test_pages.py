"""The dashboard's pages read through the services the API uses: overview, histories, suppressions."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provider.services.daily_counts import daily_counts
from provider.services.outcomes import outcome_of
from provider.settings import Settings

from ..outbound.conftest import new_account
from .conftest import Shop, csrf_token, inbound, outbound, sign_in


def text_of(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)
    return html.unescape(response.get_data(as_text=True))


def chart_data(page: str) -> dict[str, object]:
    found = re.search(r"data-chart='([^']*)'", page)
    assert found is not None, "the overview has no chart"
    return json.loads(found.group(1))


def test_overview_charts_today_s_inbound_and_outbound_by_outcome(signed_in: FlaskClient) -> None:
    data = chart_data(text_of(signed_in, "/dashboard"))
    series = data["series"]
    assert isinstance(series, dict)
    assert len(data["days"]) == 30 and data["days"][-1] == datetime.now(UTC).date().isoformat()
    assert series["inbound accepted"][-1] == 1 and series["outbound delivered"][-1] == 1
    assert sum(series["inbound rejected"]) == 0 and sum(series["outbound bounced"]) == 0


def test_overview_of_a_new_account_says_where_to_send_an_email(
    client: FlaskClient, db_session: Session, settings: Settings
) -> None:
    account = new_account(db_session, settings)
    sign_in(client, settings, account.resource_id)
    page = text_of(client, "/dashboard")
    assert 'id="chart"' not in page
    empty = re.search(r'<p id="empty-state">(.*?)</p>', page, re.S)
    assert empty is not None and "Send an email to" in empty.group(1)
    assert "@" in empty.group(1) and "to see it here" in empty.group(1)


def test_overview_shows_usage_against_the_plan_s_limits(signed_in: FlaskClient) -> None:
    page = text_of(signed_in, "/dashboard")
    assert "0 of 3,000 emails" in page  # the starter plan; no usage counted in this test's rows


def test_daily_counts_group_each_day_and_outcome_into_its_own_point(
    db_session: Session, settings: Settings
) -> None:
    resource_id = new_account(db_session, settings).resource_id
    now = datetime(2026, 5, 20, 10, 0, tzinfo=UTC)
    for status, days_ago in (("201", 0), ("200", 0), ("404", 1), ("rejected_size", 1), ("500", 2),
                             ("client_timeout", 29), ("201", 30)):
        inbound(db_session, resource_id, subject=status, status=status, when=now - timedelta(days=days_ago))
    counts = daily_counts(db_session, resource_id, days=30, now=now)
    assert counts.days[0].isoformat() == "2026-04-21" and counts.days[-1].isoformat() == "2026-05-20"
    assert counts.series["inbound accepted"][-1] == 2
    assert counts.series["inbound rejected"][-2] == 2
    assert counts.series["inbound deferred"][-3] == 1 and counts.series["inbound deferred"][0] == 1
    assert counts.total == 6  # the message 30 days ago is before the first day


def test_outcomes_follow_the_smtp_answer_the_sender_got() -> None:
    assert [outcome_of(s) for s in ("201", "299", "404", "rejected_quota", "rejected_content")] == [
        "accepted", "accepted", "rejected", "rejected", "rejected"]
    assert {outcome_of(s) for s in ("500", "302", "client_timeout", "unreachable", "local_error",
                                    "store_error")} == {"deferred"}


def test_inbound_history_is_newest_first_and_filters_by_outcome_and_subject(
    signed_in: FlaskClient, db_session: Session, shop: Shop
) -> None:
    inbound(db_session, shop.account.resource_id, subject="Refused by the app", status="422")
    page = text_of(signed_in, "/dashboard/inbound")
    assert page.index("Refused by the app") < page.index("Order 1001 received")
    rejected = text_of(signed_in, "/dashboard/inbound?outcome=rejected")
    assert "Refused by the app" in rejected and "Order 1001" not in rejected
    searched = text_of(signed_in, "/dashboard/inbound?subject=order+1001")
    assert "Order 1001 received" in searched and "Refused by the app" not in searched
    nothing = text_of(signed_in, "/dashboard/inbound?from=nobody")
    assert "No message matches these filters." in nothing


def test_inbound_history_pages_with_the_api_s_cursors(
    signed_in: FlaskClient, db_session: Session, shop: Shop
) -> None:
    inbound(db_session, shop.account.resource_id, subject="Second message")
    first = text_of(signed_in, "/dashboard/inbound?limit=1&outcome=accepted")
    assert "Second message" in first and "Order 1001" not in first
    older = re.search(r'<a href="([^"]+)" role="button"[^>]*>Older</a>', first)
    assert older is not None and "outcome=accepted" in older.group(1)
    second = text_of(signed_in, older.group(1))
    assert "Order 1001 received" in second and "Second message" not in second
    assert ">Older</a>" not in second


def test_a_bad_filter_is_answered_beside_the_form_with_the_api_s_words(signed_in: FlaskClient) -> None:
    page = text_of(signed_in, "/dashboard/inbound?since=2026-05-02&until=2026-05-01", status=400)
    error = re.search(r'<p class="error" role="alert" id="filter-error">(.*?)</p>', page)
    assert error is not None and error.group(1) == "since must be before until"
    assert 'value="2026-05-02"' in page  # the form keeps what was typed


def test_inbound_detail_shows_envelope_checks_and_the_target_s_answer(
    signed_in: FlaskClient, shop: Shop
) -> None:
    page = text_of(signed_in, f"/dashboard/inbound/{shop.inbound_id}")
    for expected in ("ann@sender.example", "box@cloudmailin.test", "pass", "https://app.example/mail",
                     "201", "42 ms", "thanks from the app", "250 2.0.0 ok", "accepted"):
        assert expected in page, expected
    assert re.search(r"<dt>TLS</dt><dd>yes</dd>", page)


def test_outbound_history_and_detail_show_each_recipient_s_state_and_remote_reply(
    signed_in: FlaskClient, db_session: Session, shop: Shop
) -> None:
    outbound(db_session, shop.account.resource_id, subject="Bounced one", state="bounced",
             reply="550 5.1.1 user unknown")
    listing = text_of(signed_in, "/dashboard/outbound")
    assert listing.index("Bounced one") < listing.index("Your order shipped")
    bounced = text_of(signed_in, "/dashboard/outbound?state=bounced")
    assert "Bounced one" in bounced and "Your order shipped" not in bounced
    detail = text_of(signed_in, f"/dashboard/outbound/{shop.outbound_id}")
    assert "bo@example.org" in detail and "250 2.0.0 queued as 12345" in detail
    assert "mx.example.org" in detail and "delivered" in detail


def test_removing_a_suppression_takes_it_off_the_list(signed_in: FlaskClient) -> None:
    page = text_of(signed_in, "/dashboard/suppressions")
    assert "gone@example.net" in page
    response = signed_in.post("/dashboard/suppressions/remove",
                              data={"address": "gone@example.net", "csrf_token": csrf_token(page)})
    assert response.status_code == 303
    after = text_of(signed_in, "/dashboard/suppressions")
    assert "gone@example.net was removed from the suppression list" in after
    assert "<code>gone@example.net</code>" not in after
    again = signed_in.post("/dashboard/suppressions/remove",
                           data={"address": "gone@example.net", "csrf_token": csrf_token(page)},
                           follow_redirects=True)
    assert "gone@example.net is not on the suppression list." in html.unescape(again.get_data(as_text=True))


def test_htmx_removal_answers_an_empty_row(signed_in: FlaskClient) -> None:
    token = csrf_token(text_of(signed_in, "/dashboard/suppressions"))
    response = signed_in.post("/dashboard/suppressions/remove", headers={"HX-Request": "true"},
                              data={"address": "gone@example.net", "csrf_token": token})
    assert response.status_code == 200 and response.get_data() == b""


def test_the_api_filters_by_the_same_outcome_the_dashboard_shows(
    client: FlaskClient, db_session: Session, shop: Shop
) -> None:
    for status in ("422", "rejected_size", "503", "client_timeout"):
        inbound(db_session, shop.account.resource_id, subject=status, status=status)
    account = shop.account
    for outcome, expected in (("rejected", {"422", "rejected_size"}), ("deferred", {"503", "client_timeout"}),
                              ("accepted", {"Order 1001 received"})):
        response = client.get(account.path("incoming_statuses") + f"?outcome={outcome}", headers=account.auth)
        assert response.status_code == 200, response.get_json()
        assert {item["subject"] for item in response.get_json()["incoming_statuses"]} == expected
    refused = client.get(account.path("incoming_statuses") + "?outcome=lost", headers=account.auth)
    assert refused.status_code == 422
    assert refused.get_json()["error"] == "outcome must be one of accepted, rejected, deferred"
