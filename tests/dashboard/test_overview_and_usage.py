"""The overview's figures and chart, and the usage statistics with their CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from integration.models import Account
from integration.services import account_refund, api_key_create
from sms.models import Message
from tests.dashboard.data import make_message, make_request_log
from tests.dashboard.support import dash, downloaded

pytestmark = pytest.mark.django_db


def test_the_overview_counts_messages_rates_and_spend(owner_client: Client, alice: Account) -> None:
    now = timezone.now()
    make_message(alice, statuses=["delivered", "delivered", "failed"], charge=True)
    make_message(alice, statuses=["delivered"], created_at=now - timedelta(days=3), charge=True)
    make_message(alice, statuses=["failed"], created_at=now - timedelta(days=20), charge=True)
    make_message(alice, statuses=["delivered"], created_at=now - timedelta(days=40))
    account_refund(account_id=alice.pk, amount=Decimal("10.00"), reference="r")
    stats = owner_client.get(dash()).context["stats"]
    assert (stats.messages_today, stats.messages_7d, stats.messages_30d) == (1, 2, 3)
    assert stats.recipients_30d == 5
    assert stats.delivered_30d == 3 and stats.failed_30d == 2
    assert stats.delivery_rate == pytest.approx(60.0)
    assert stats.spend_30d == Decimal("40.00")  # 50 charged, 10 refunded
    assert stats.balance == Decimal("4960.00")
    assert [a.kind for a in stats.attention] == ["failed"]


def test_test_key_traffic_stays_out_of_the_live_figures(
    owner_client: Client, alice: Account, make_key: Any
) -> None:
    """Test keys' messages go to the simulator: their deliveries are not the account's."""
    make_message(alice, statuses=["delivered", "failed"], charge=True)
    tester = make_key(alice, test=True).api_key
    for _ in range(3):
        message = make_message(alice, statuses=["delivered", "delivered"], is_test=True)
        Message.objects.filter(pk=message.pk).update(api_key=tester)
    stats = owner_client.get(dash()).context["stats"]
    assert (stats.messages_today, stats.recipients_30d) == (1, 2)
    assert (stats.delivered_30d, stats.failed_30d) == (1, 1)
    assert stats.delivery_rate == pytest.approx(50.0)
    chart = owner_client.get(dash()).context["chart"]
    assert sorted((b.css, b.value) for b in chart.bars) == [("s-delivered", 1), ("s-failed", 1)]
    report = owner_client.get(dash("usage/")).context["report"]
    assert (report.messages, report.recipients) == (1, 2)
    # The test key's own usage shows its own messages.
    of_key = owner_client.get(dash("usage/"), {"key": tester.pk}).context["report"]
    assert (of_key.messages, of_key.recipients, of_key.spend) == (3, 6, Decimal("0.00"))


def test_the_overview_chart_has_a_bar_per_status_and_day(
    owner_client: Client, alice: Account
) -> None:
    make_message(alice, statuses=["delivered", "delivered", "failed"])
    make_message(alice, statuses=["delivered"], created_at=timezone.now() - timedelta(days=2))
    response = owner_client.get(dash())
    chart = response.context["chart"]
    assert len(chart.rows) == 30
    assert sorted((b.css, b.value) for b in chart.bars) == [
        ("s-delivered", 1),
        ("s-delivered", 2),
        ("s-failed", 1),
    ]
    content = response.content.decode()
    # Drawn twice, wide and narrow, and the stylesheet shows the one that fits.
    assert content.count('<rect class="bar') == 3 * 2
    assert [p.name for p in chart.plots] == ["wide", "narrow"]
    assert [b.value for b in chart.plots[1].bars] == [b.value for b in chart.bars]
    assert 'data-points="3"' in content


def test_an_empty_account_shows_an_empty_chart(owner_client: Client) -> None:
    content = owner_client.get(dash()).content.decode()
    assert "Nothing in this period yet" in content
    assert 'data-points="0"' in content


def test_usage_counts_requests_errors_rate_limits_and_latency(
    owner_client: Client, alice: Account, bob: Account
) -> None:
    for latency in range(1, 21):
        make_request_log(alice, latency_ms=float(latency))
    make_request_log(
        alice, route="sms/send/", method="POST", status_code=400, error_code="INVALID_PHONE"
    )
    make_request_log(
        alice, route="sms/send/", method="POST", status_code=429, error_code="RATE_LIMIT_EXCEEDED"
    )
    make_request_log(alice, created_at=timezone.now() - timedelta(days=45))
    make_request_log(bob)
    report = owner_client.get(dash("usage/")).context["report"]
    assert report.requests == 22 and report.errors == 2 and report.rate_limited == 1
    assert report.error_rate == pytest.approx(100 * 2 / 22)
    balance = next(r for r in report.routes if r.route == "sms/balance/")
    assert balance.requests == 20 and balance.errors == 0
    assert balance.avg_latency_ms == pytest.approx(10.5)
    assert balance.p95_latency_ms == pytest.approx(19.05)
    assert {(e.code, e.count) for e in report.error_codes} == {
        ("INVALID_PHONE", 1),
        ("RATE_LIMIT_EXCEEDED", 1),
    }
    assert report.days[-1].requests == 22


@pytest.mark.parametrize("period", [7, 30, 90])
def test_the_period_is_selectable(owner_client: Client, alice: Account, period: int) -> None:
    make_request_log(alice, created_at=timezone.now() - timedelta(days=45))
    response = owner_client.get(dash("usage/"), {"period": period})
    assert response.context["period"] == period
    assert len(response.context["report"].days) == period
    assert response.context["report"].requests == (1 if period == 90 else 0)


def test_an_unknown_period_falls_back_to_30_days(owner_client: Client) -> None:
    assert owner_client.get(dash("usage/"), {"period": "365"}).context["period"] == 30


def test_usage_includes_messages_recipients_and_spend(owner_client: Client, alice: Account) -> None:
    make_message(alice, statuses=["delivered", "failed"], charge=True)
    report = owner_client.get(dash("usage/")).context["report"]
    assert (report.messages, report.recipients, report.spend) == (1, 2, Decimal("20.00"))


def csv_rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(downloaded(response))))


def test_the_daily_csv_has_a_row_per_day(owner_client: Client, alice: Account) -> None:
    make_request_log(alice, status_code=429, error_code="RATE_LIMIT_EXCEEDED")
    make_message(alice, statuses=["delivered"], charge=True)
    response = owner_client.get(dash("usage/export.csv"), {"period": 7})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = csv_rows(response)
    assert rows[0] == [
        "date",
        "api_requests",
        "api_errors",
        "rate_limited",
        "avg_latency_ms",
        "messages",
        "recipients",
        "spend",
    ]
    assert len(rows) == 8
    assert rows[-1][1:4] == ["1", "1", "1"] and rows[-1][5:] == ["1", "1", "10.00"]


def test_the_endpoints_csv_neutralises_formulas(owner_client: Client, alice: Account) -> None:
    make_request_log(alice, route="=HYPERLINK(1)")
    response = owner_client.get(dash("usage/export.csv"), {"table": "endpoints"})
    rows = csv_rows(response)
    assert rows[0][:3] == ["method", "route", "requests"]
    assert rows[1][1] == "'=HYPERLINK(1)"


def test_a_member_can_read_the_statistics(member_client: Client, alice: Account) -> None:
    make_request_log(alice)
    assert member_client.get(dash("usage/")).status_code == 200
    assert member_client.get(dash("usage/export.csv")).status_code == 200


def test_the_usage_charts_render(owner_client: Client, alice: Account) -> None:
    make_request_log(alice)
    make_request_log(alice, status_code=500, error_code="INTERNAL_ERROR")
    charts = owner_client.get(dash("usage/")).context["charts"]
    requests_chart = charts[0]
    assert {(b.css, b.value) for b in requests_chart.bars} == {("s-ok", 1), ("s-server", 1)}


def test_usage_is_filtered_by_the_key_that_made_it(owner_client: Client, alice: Account) -> None:
    billing = api_key_create(account=alice, name="Billing app").api_key
    other = api_key_create(account=alice, name="Reports").api_key
    make_request_log(alice, api_key=billing)
    make_request_log(alice, api_key=billing, status_code=400, error_code="INVALID_PHONE")
    make_request_log(alice, api_key=other)
    mine = make_message(alice, statuses=["delivered", "delivered"], charge=True)
    theirs = make_message(alice, statuses=["delivered"], charge=True)
    Message.objects.filter(pk=mine.pk).update(api_key=billing)
    Message.objects.filter(pk=theirs.pk).update(api_key=other)
    everything = owner_client.get(dash("usage/")).context["report"]
    assert (everything.requests, everything.messages, everything.spend) == (3, 2, 30)
    report = owner_client.get(dash("usage/"), {"key": billing.pk}).context["report"]
    assert (report.requests, report.errors, report.messages, report.recipients) == (2, 1, 1, 2)
    assert report.spend == Decimal("20.00")
    rows = csv_rows(owner_client.get(dash("usage/export.csv"), {"key": billing.pk}))
    assert sum(int(r[1]) for r in rows[1:]) == 2
