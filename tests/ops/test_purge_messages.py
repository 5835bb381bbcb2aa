"""purge_messages: old final messages go (archived first when asked), everything else stays."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integration.models import LedgerEntry
from integration.services import account_debit
from sms.models import CarrierMessage, Message, Recipient
from webhooks.models import Delivery, Event, EventType

S = Recipient.Status
pytestmark = pytest.mark.django_db


def make_message(account, *, age_days: float, statuses: list[str]) -> Message:
    created = timezone.now() - timedelta(days=age_days)
    message = Message.objects.create(
        account=account,
        text="Habari",
        sender_id="MIFUMO",
        encoding="GSM-7",
        segments=1,
        recipient_count=len(statuses),
        cost=Decimal("10.00") * len(statuses),
        created_at=created,
    )
    for index, status in enumerate(statuses):
        recipient = Recipient.objects.create(
            message=message,
            account=account,
            created_at=created,
            phone=f"+2557123{index:05d}",
            status=status,
            cost=Decimal("10.00"),
            updated_at=created,
        )
        if status in (S.SENT, S.DELIVERED, S.FAILED):
            CarrierMessage.objects.create(
                carrier="simulator",
                carrier_message_id=f"sim-{message.id}-{index}",
                recipient=recipient,
            )
    return message


def webhook(message: Message, status: str) -> Delivery:
    event = Event.objects.create(
        account=message.account, type=EventType.DELIVERED, message=message, body="{}"
    )
    return Delivery.objects.create(
        event=event, account=message.account, url="https://hooks.example.com/sms", status=status
    )


@pytest.fixture
def history(alice):
    """Old final messages (purgeable), and what must stay: recent ones, unfinished ones, and
    one whose webhook is still pending."""
    old_delivered = make_message(alice, age_days=400, statuses=[S.DELIVERED, S.FAILED])
    old_canceled = make_message(alice, age_days=200, statuses=[S.CANCELED])
    webhook(old_delivered, Delivery.Status.SUCCEEDED)
    account_debit(account_id=alice.pk, amount=Decimal("20.00"), reference=old_delivered.id)
    kept = {
        "recent": make_message(alice, age_days=5, statuses=[S.DELIVERED]),
        "sent": make_message(alice, age_days=300, statuses=[S.DELIVERED, S.SENT]),
        "queued": make_message(alice, age_days=300, statuses=[S.QUEUED]),
        "submitting": make_message(alice, age_days=300, statuses=[S.SUBMITTING]),
        "scheduled": make_message(alice, age_days=300, statuses=[S.SCHEDULED]),
        "webhook": make_message(alice, age_days=300, statuses=[S.FAILED]),
    }
    webhook(kept["webhook"], Delivery.Status.PENDING)
    return {"purged": [old_delivered, old_canceled], "kept": kept}


def purge(*args: str, **kwargs) -> str:
    out = StringIO()
    call_command("purge_messages", *args, stdout=out, **kwargs)
    return out.getvalue()


def snapshot() -> tuple[int, int, int, int, int]:
    return (
        Message.objects.count(),
        Recipient.objects.count(),
        CarrierMessage.objects.count(),
        Event.objects.count(),
        Delivery.objects.count(),
    )


def archived(path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_a_dry_run_counts_and_changes_nothing(history, tmp_path):
    before = snapshot()
    out = purge("--older-than-days", "30", "--dry-run", "--archive", str(tmp_path / "a.jsonl.gz"))
    assert "would purge 2 messages (3 recipients)" in out
    assert snapshot() == before
    assert not (tmp_path / "a.jsonl.gz").exists()


def test_old_final_messages_are_archived_then_deleted_with_everything_hanging_off_them(
    history, tmp_path
):
    path = tmp_path / "messages-2025.jsonl.gz"
    out = purge("--older-than-days", "30", "--archive", str(path))
    assert "Purged 2 messages (3 recipients)" in out
    purged_ids = sorted(m.id for m in history["purged"])
    assert not Message.objects.filter(id__in=purged_ids).exists()
    assert not Recipient.objects.filter(message_id__in=purged_ids).exists()
    assert not CarrierMessage.objects.filter(recipient__message_id__in=purged_ids).exists()
    assert not Event.objects.filter(message_id__in=purged_ids).exists()
    kept_ids = {m.id for m in history["kept"].values()}
    assert set(Message.objects.values_list("id", flat=True)) == kept_ids
    assert Recipient.objects.count() == 7
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 1
    # Money history is never purged.
    assert LedgerEntry.objects.filter(reference=history["purged"][0].id).exists()

    lines = archived(path)
    assert [line["id"] for line in lines] == purged_ids
    by_id = {line["id"]: line for line in lines}
    delivered = by_id[history["purged"][0].id]
    assert delivered["text"] == "Habari" and delivered["cost"] == "20.00"
    assert delivered["account_id"] == history["purged"][0].account_id
    created = parse_datetime(delivered["created_at"])
    assert abs(created - history["purged"][0].created_at) < timedelta(milliseconds=1)
    assert [(r["phone"], r["status"]) for r in delivered["recipients"]] == [
        ("+255712300000", "delivered"),
        ("+255712300001", "failed"),
    ]
    assert [p["carrier_message_id"] for p in delivered["recipients"][0]["parts"]] == [
        f"sim-{delivered['id']}-0"
    ]
    canceled = by_id[history["purged"][1].id]
    assert canceled["recipients"][0]["status"] == "canceled"
    assert canceled["recipients"][0]["parts"] == []


def test_small_batches_give_the_same_result_and_a_second_run_appends(alice, history, tmp_path):
    path = tmp_path / "archive.jsonl.gz"
    out = purge("--older-than-days", "30", "--archive", str(path), "--batch-size", "1", verbosity=2)
    assert "batch 1: 1 messages" in out and "batch 2: 1 messages" in out
    assert "in 2 batches" in out
    later = make_message(alice, age_days=100, statuses=[S.DELIVERED])
    purge("--older-than-days", "30", "--archive", str(path))
    assert [line["id"] for line in archived(path)] == [
        *sorted(m.id for m in history["purged"]),
        later.id,
    ]
    assert purge("--older-than-days", "30").startswith("Purged 0 messages")


def test_the_default_age_is_the_retention_setting(alice, settings):
    settings.MIFUMO_RETENTION_DAYS = 250
    old = make_message(alice, age_days=260, statuses=[S.DELIVERED])
    younger = make_message(alice, age_days=240, statuses=[S.DELIVERED])
    purge()
    assert not Message.objects.filter(pk=old.pk).exists()
    assert Message.objects.filter(pk=younger.pk).exists()


def test_nonsense_arguments_are_refused(tmp_path):
    with pytest.raises(CommandError, match="at least 1"):
        purge("--older-than-days", "0")
    with pytest.raises(CommandError, match="batch-size"):
        purge("--batch-size", "0")
    with pytest.raises(CommandError, match="No such folder"):
        purge("--archive", str(tmp_path / "missing" / "a.jsonl.gz"))
