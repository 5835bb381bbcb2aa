from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from integration.auth import authenticate_key
from integration.models import Account, LedgerEntry
from sms.models import SenderId


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_create_account_with_opening_balance():
    output = run("create_account", "Shop", "--balance", "2500")
    account = Account.objects.get(name="Shop")
    assert account.balance == Decimal("2500.00")
    assert "Shop" in output and "2500.00" in output
    assert LedgerEntry.objects.filter(account=account, kind="top_up").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create_account", "  "], "empty"),
        (["create_account", "Shop", "--balance", "abc"], "not an amount"),
        (["create_account", "Shop", "--balance", "-5"], "negative"),
        (["create_account", "Shop", "--balance", "1.234"], "two decimal"),
        (["create_account", "12345"], "digits"),
    ],
)
def test_create_account_rejects_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_create_account_refuses_a_duplicate_name(alice):
    with pytest.raises(CommandError, match="already exists"):
        run("create_account", "alice")


@pytest.mark.django_db
def test_create_api_key_prints_the_raw_key_alone_on_the_last_line(alice):
    output = run("create_api_key", "alice", "--permissions", "read,write", "--name", "ci")
    raw = output.strip().splitlines()[-1]
    key = authenticate_key(raw)
    assert key.account == alice and key.name == "ci" and key.permission == "write"
    assert not key.is_test


@pytest.mark.django_db
def test_create_api_key_by_account_id_as_test_admin_key(alice):
    raw = run("create_api_key", str(alice.pk), "--permissions", "admin", "--test").split()[-1]
    key = authenticate_key(raw)
    assert raw.startswith("mif_test_") and key.permission == "admin" and key.is_test


@pytest.mark.django_db
def test_create_api_key_rejects_unknown_account_and_permission(alice):
    with pytest.raises(CommandError, match="No account"):
        run("create_api_key", "nobody")
    with pytest.raises(CommandError, match="Unknown permissions"):
        run("create_api_key", "alice", "--permissions", "read,root")
    with pytest.raises(CommandError, match="at most 100 characters"):
        run("create_api_key", "alice", "--name", "k" * 101)
    assert not alice.api_keys.exists()


@pytest.mark.django_db
def test_top_up_adds_credit_with_a_ledger_row(alice):
    output = run("top_up", "alice", "150.25")
    alice.refresh_from_db()
    assert alice.balance == Decimal("5150.25")
    assert "5150.25" in output
    assert LedgerEntry.objects.filter(account=alice, kind="top_up").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-10", "ten", "NaN", "1e20"])
def test_top_up_rejects_bad_amounts(alice, amount):
    with pytest.raises(CommandError):
        run("top_up", "alice", amount)
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")


@pytest.mark.django_db
def test_top_up_unknown_account():
    with pytest.raises(CommandError, match="No account"):
        run("top_up", "ghost", "10")


@pytest.mark.django_db
def test_approve_sender_id_creates_or_approves(alice):
    SenderId.objects.create(account=alice, value="ACME")
    run("approve_sender_id", "alice", "ACME")
    assert SenderId.objects.get(account=alice, value="ACME").status == "approved"
    run("approve_sender_id", "alice", "SHOP")
    assert SenderId.objects.get(account=alice, value="SHOP").status == "approved"
    run("approve_sender_id", "alice", "SHOP", "--reject", "--reason", "Brand not yours")
    rejected = SenderId.objects.get(account=alice, value="SHOP")
    assert (rejected.status, rejected.note) == ("rejected", "Brand not yours")


@pytest.mark.django_db
def test_approve_sender_id_rejects_bad_input(alice):
    with pytest.raises(CommandError, match="No account"):
        run("approve_sender_id", "ghost", "ACME")
    with pytest.raises(CommandError):
        run("approve_sender_id", "alice", "WAY-TOO-LONG-NAME")
    with pytest.raises(CommandError, match="Give --reason when rejecting"):
        run("approve_sender_id", "alice", "SHOP", "--reject")
    with pytest.raises(CommandError, match="longer than 255"):
        run("approve_sender_id", "alice", "SHOP", "--reject", "--reason", "x" * 256)
    assert not SenderId.objects.filter(account=alice, value="SHOP").exists()


@pytest.mark.django_db
def test_set_account_limits(alice):
    run("set_account_limits", "alice", "--sms-per-minute", "6000", "--max-message-length", "918")
    alice.refresh_from_db()
    assert alice.sms_per_minute == 6000 and alice.message_length_limit == 918
    run("set_account_limits", "alice", "--sms-per-minute", "0")
    alice.refresh_from_db()
    assert alice.sms_per_minute is None
    with pytest.raises(CommandError):
        run("set_account_limits", "alice")
    with pytest.raises(CommandError):
        run("set_account_limits", "alice", "--api-per-hour", "-1")


@pytest.mark.django_db
def test_ensure_demo_is_idempotent_and_prints_a_working_key(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = run("ensure_demo").strip().splitlines()[-1]
    second = run("ensure_demo").strip().splitlines()[-1]
    assert first == second
    key = authenticate_key(first)
    assert key.account.name == "Demo" and key.account.balance == Decimal("5000.00")
    assert Account.objects.filter(name="Demo").count() == 1


@pytest.mark.django_db
def test_top_up_and_sender_approval_are_in_the_activity_log(alice):
    from integration.models import AuditEvent

    run("top_up", "alice", "10")
    run("approve_sender_id", "alice", "ACME")
    actions = list(AuditEvent.objects.filter(account=alice).values_list("action", flat=True))
    assert sorted(actions) == ["account.top_up", "sender_id.approved"]
