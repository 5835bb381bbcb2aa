from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from integration.models import Account, LedgerEntry
from integration.services import (
    InsufficientBalance,
    account_adjust,
    account_debit,
    account_refund,
    account_top_up,
)
from mifumo.errors import DomainError


@pytest.mark.django_db
def test_opening_balance_is_a_top_up_row(alice):
    entry = LedgerEntry.objects.get(account=alice)
    assert entry.kind == "top_up" and entry.amount == Decimal("5000.00")
    assert entry.balance_after == alice.balance


@pytest.mark.django_db
def test_debit_refund_and_adjustment_write_rows_with_the_balance_after(alice):
    account_debit(account_id=alice.pk, amount=Decimal("30.00"), reference="msg_x")
    account_refund(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_x")
    account_adjust(account=alice, amount="-5.50", note="correction")
    rows = list(LedgerEntry.objects.filter(account=alice).order_by("id"))
    assert [r.kind for r in rows] == ["top_up", "debit", "refund", "adjustment"]
    assert [r.balance_after for r in rows] == [
        Decimal(x) for x in ("5000.00", "4970.00", "4980.00", "4974.50")
    ]
    alice.refresh_from_db()
    assert alice.balance == Decimal("4974.50")


@pytest.mark.django_db
def test_debit_beyond_the_balance_is_refused_and_changes_nothing(make_account):
    poor = make_account("poor", balance="10.00")
    with pytest.raises(InsufficientBalance) as caught:
        account_debit(account_id=poor.pk, amount=Decimal("10.01"), reference="msg_y")
    assert caught.value.details == {"cost": 10.01, "balance": 10.0, "currency": "TZS"}
    poor.refresh_from_db()
    assert poor.balance == Decimal("10.00")
    assert LedgerEntry.objects.filter(account=poor).count() == 1


@pytest.mark.django_db
def test_exact_balance_can_be_spent_to_zero(make_account):
    poor = make_account("poor", balance="10.00")
    account_debit(account_id=poor.pk, amount=Decimal("10.00"), reference="msg_z")
    poor.refresh_from_db()
    assert poor.balance == Decimal("0.00")


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-1", "0.001"])
def test_non_positive_top_up_is_refused(alice, amount):
    with pytest.raises(DomainError):
        account_top_up(account=alice, amount=amount)
    assert LedgerEntry.objects.filter(account=alice).count() == 1


@pytest.mark.django_db
def test_ledger_rows_cannot_be_edited(alice):
    entry = LedgerEntry.objects.get(account=alice)
    entry.amount = Decimal("1.00")
    with pytest.raises(ValueError, match="append-only"):
        entry.save()


@pytest.mark.django_db(transaction=True)
def test_concurrent_debits_never_overspend_and_the_ledger_sums_to_the_balance(make_account):
    account = make_account("busy", balance="1000.00")

    def debit(i: int) -> bool:
        try:
            account_debit(account_id=account.pk, amount=Decimal("7.00"), reference=f"d{i}")
            return True
        except InsufficientBalance:
            return False
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(debit, range(300)))
    account.refresh_from_db()
    assert results.count(True) == 142  # floor(1000 / 7)
    assert account.balance == Decimal("6.00")
    total = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"]
    assert total == account.balance
    balances = sorted(
        LedgerEntry.objects.filter(account=account, kind="debit").values_list(
            "balance_after", flat=True
        )
    )
    assert len(set(balances)) == len(balances)  # every debit saw its own balance
    assert Account.objects.get(pk=account.pk).balance >= 0


@pytest.mark.django_db
def test_a_send_s_debit_pays_no_entry_in_the_created_by_index(alice, django_user_model):
    """The ledger's indexes are these and no more; the one on ``created_by`` holds only the
    rows that name a user, and still serves the lookup a user's deletion makes."""
    staff = django_user_model.objects.create_user("ledger-staff", password="x" * 16)
    account_top_up(account=alice, amount="100", note="by hand", created_by=staff)
    for n in range(3):
        account_debit(account_id=alice.pk, amount=Decimal("1.00"), reference=f"msg_{n}")
    table = LedgerEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        indexes = {name: sql.split(" USING btree ")[1] for name, sql in cursor.fetchall()}
        assert sorted(indexes.values()) == [
            "(account_id, id DESC)",
            "(created_by_id) WHERE (created_by_id IS NOT NULL)",
            "(id)",
            "(reference)",
        ]
        # Only the top-up by hand is in it: the debits, and the opening balance, name nobody.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM integration_ledgerentry "
            "WHERE created_by_id IS NOT NULL"
        )
        plan = cursor.fetchone()[0][0]["Plan"]
        assert plan["Index Name"] == "ledger_created_by" and plan["Actual Rows"] == 1
        # Deleting a user clears their rows through the index (created_by_id IN (...)).
        sql, params = LedgerEntry.objects.filter(created_by__in=[staff.pk]).query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        assert "ledger_created_by" in "\n".join(row[0] for row in cursor.fetchall())
    staff.delete()
    assert LedgerEntry.objects.filter(account=alice, created_by__isnull=False).count() == 0
    assert LedgerEntry.objects.filter(account=alice, note="by hand").count() == 1
