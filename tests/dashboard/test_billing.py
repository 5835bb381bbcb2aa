"""The billing page: the ledger with its CSV, spend per day, and the low-balance alert's
threshold; operators are never named."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from integration.models import Account, AuditEvent, LedgerEntry
from integration.services import account_adjust, account_refund, account_top_up
from tests.dashboard.data import make_message
from tests.dashboard.support import dash, downloaded

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("opsmanager", "ops@example.com", "x")


@pytest.fixture
def moves(alice: Account, operator: Any) -> dict[str, Any]:
    message = make_message(alice, statuses=["delivered", "failed"], charge=True)
    account_refund(account_id=alice.pk, amount=Decimal("10.00"), reference=message.pk)
    account_top_up(account=alice, amount="100.00", reference="=HYPERLINK(1)", created_by=operator)
    account_adjust(account=alice, amount="-5.00", note="correction", created_by=operator)
    return {"message": message}


def test_the_ledger_lists_every_movement_and_names_no_operator(
    owner_client: Client, moves: dict[str, Any], operator: Any
) -> None:
    page = owner_client.get(dash("billing/"))
    kinds = [e.kind for e, _by in page.context["rows"]]
    assert kinds == ["adjustment", "top_up", "refund", "debit", "top_up"]
    content = page.content.decode()
    assert "Mifumo operator" in content and "opsmanager" not in content
    assert moves["message"].pk in content
    assert page.context["spend_30d"] == Decimal("10.00")  # 20 debited, 10 refunded
    assert sum(b.value for b in page.context["chart"].bars) == Decimal("10.00")


def test_the_ledger_filters_by_kind_and_day(
    owner_client: Client, alice: Account, moves: dict[str, Any]
) -> None:
    refunds = owner_client.get(dash("billing/"), {"kind": "refund"})
    assert [e.kind for e, _ in refunds.context["rows"]] == ["refund"]
    LedgerEntry.objects.filter(kind="adjustment").update(
        created_at=timezone.now() - timedelta(days=3)
    )
    day = (timezone.now() - timedelta(days=3)).date().isoformat()
    that_day = owner_client.get(dash("billing/"), {"start": day, "end": day})
    assert [e.kind for e, _ in that_day.context["rows"]] == ["adjustment"]
    backwards = owner_client.get(dash("billing/"), {"start": "2025-02-01", "end": "2025-01-01"})
    assert backwards.status_code == 400
    assert "“To” is before “From”" in backwards.content.decode()


def test_the_ledger_csv_follows_the_filter_and_defuses_formulas(
    owner_client: Client, moves: dict[str, Any]
) -> None:
    response = owner_client.get(dash("billing/ledger.csv"), {"kind": "top_up"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(downloaded(response))))
    assert rows[0] == ["date", "kind", "amount", "balance_after", "reference", "note", "by"]
    assert [r[1] for r in rows[1:]] == ["top_up", "top_up"]
    assert rows[1][2] == "100.00" and rows[1][4] == "'=HYPERLINK(1)"
    assert rows[1][6] == "Mifumo operator"


def test_a_ledger_csv_with_a_bad_filter_is_refused_not_the_whole_ledger(
    owner_client: Client, moves: dict[str, Any]
) -> None:
    backwards = {"start": "2025-02-01", "end": "2025-01-01"}
    response = owner_client.get(dash("billing/ledger.csv"), backwards)
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("text/csv")
    assert "“To” is before “From”" in response.content.decode()


def test_an_owner_sets_and_clears_the_alert(
    owner_client: Client, alice: Account, owner: Any
) -> None:
    response = owner_client.post(dash("billing/alert/"), {"threshold": "6000"}, follow=True)
    alice.refresh_from_db()
    assert alice.low_balance_threshold == Decimal("6000.00")
    content = response.content.decode()
    assert "falls below 6,000.00 TZS" in content and "already below it" in content
    assert 'id="low-balance-notice"' in content
    event = AuditEvent.objects.get(action="account.low_balance_threshold")
    assert event.actor == owner and event.details == {"threshold": "6000.00"}
    owner_client.post(dash("billing/alert/"), {"threshold": ""})
    alice.refresh_from_db()
    assert alice.low_balance_threshold is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0", "Ensure this value is greater than or equal to 0.01."),
        ("-3", "Ensure this value is greater than or equal to 0.01."),
        ("12.345", "Use at most two decimal places."),
        ("lots", "Enter an amount such as 5000 or 12.50."),
    ],
)
def test_a_bad_threshold_is_explained(
    owner_client: Client, alice: Account, value: str, shown: str
) -> None:
    response = owner_client.post(dash("billing/alert/"), {"threshold": value})
    assert response.status_code == 400 and shown in response.content.decode()
    alice.refresh_from_db()
    assert alice.low_balance_threshold is None


def test_a_member_sees_billing_but_cannot_set_the_alert(
    member_client: Client, alice: Account
) -> None:
    page = member_client.get(dash("billing/"))
    assert page.status_code == 200 and b'id="threshold-form"' not in page.content
    assert member_client.post(dash("billing/alert/"), {"threshold": "10"}).status_code == 403
    alice.refresh_from_db()
    assert alice.low_balance_threshold is None


def test_the_overview_says_when_the_balance_is_low(owner_client: Client, alice: Account) -> None:
    Account.objects.filter(pk=alice.pk).update(low_balance_threshold=Decimal("9000"))
    page = owner_client.get(dash()).content.decode()
    assert "The balance is below the alert threshold of 9,000.00" in page
