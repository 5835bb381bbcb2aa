"""Receipts as carriers really send them: a late passing state after a final one, and a batch
holding a receipt no column can keep. The final state stands, and one odd receipt never sinks
the batch it came in (the carrier was already told the batch was taken)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sms import dispatch
from sms.carriers.base import DeliveryReceipt, DeliveryStatus
from sms.models import CarrierMessage, Recipient, UnmatchedReceipt
from sms.receipts import receipts_ingest
from sms.services import message_send

pytestmark = pytest.mark.django_db

AT = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
D, ENROUTE, UNDELIVERABLE = (
    DeliveryStatus.DELIVERED,
    DeliveryStatus.ENROUTE,
    DeliveryStatus.UNDELIVERABLE,
)


def sent(account: Any, phones: list[str], parts: int = 1) -> list[int]:
    """Recipients ``sent``, each with ``parts`` carrier ids ``r<id>-<part>``."""
    message = message_send(account=account, text="Habari", recipients=phones).message
    dispatch.message_dispatch(message_id=message.id)
    ids = list(message.recipients.order_by("id").values_list("id", flat=True))
    CarrierMessage.objects.filter(recipient_id__in=ids).delete()
    CarrierMessage.objects.bulk_create(
        CarrierMessage(carrier="locmem", carrier_message_id=f"r{rid}-{n}", recipient_id=rid, part=n)
        for rid in ids
        for n in range(1, parts + 1)
    )
    return ids


def receipt(carrier_id: str, status: DeliveryStatus, **kw: Any) -> DeliveryReceipt:
    return DeliveryReceipt("locmem", carrier_id, status, AT, **kw)


def status(recipient_id: int) -> str:
    return str(Recipient.objects.get(pk=recipient_id).status)


def test_a_passing_state_after_a_final_one_in_the_same_batch_does_not_hide_it(
    locmem: Any, alice: Any
) -> None:
    [rid] = sent(alice, ["+255712345678"])
    receipts_ingest(receipts=[receipt(f"r{rid}-1", D), receipt(f"r{rid}-1", ENROUTE)])
    assert status(rid) == "delivered"
    assert CarrierMessage.objects.get(recipient_id=rid).status == "delivered"


def test_a_late_passing_state_for_a_part_keeps_the_part_final(locmem: Any, alice: Any) -> None:
    [rid] = sent(alice, ["+255712345678"], parts=2)
    receipts_ingest(receipts=[receipt(f"r{rid}-1", D)])
    receipts_ingest(receipts=[receipt(f"r{rid}-1", ENROUTE)])
    assert status(rid) == "sent"
    receipts_ingest(receipts=[receipt(f"r{rid}-2", D)])
    assert status(rid) == "delivered"
    parts = CarrierMessage.objects.filter(recipient_id=rid).order_by("part")
    assert list(parts.values_list("status", flat=True)) == ["delivered", "delivered"]


def test_a_final_state_still_replaces_a_passing_one(locmem: Any, alice: Any) -> None:
    [rid] = sent(alice, ["+255712345678"])
    receipts_ingest(receipts=[receipt(f"r{rid}-1", ENROUTE)])
    assert CarrierMessage.objects.get(recipient_id=rid).status == "enroute"
    receipts_ingest(receipts=[receipt(f"r{rid}-1", UNDELIVERABLE)])
    assert status(rid) == "failed"


def test_one_odd_receipt_does_not_sink_the_batch(locmem: Any, alice: Any) -> None:
    delivered, failed = sent(alice, ["+255712345678", "+255754000111"])
    batch = [
        receipt(f"r{delivered}-1", D),
        receipt("x" * 81, D),  # longer than any id a message has
        receipt("unknown\x00-\udc80", D, raw={"k\x00": "v\ud83d"}),
        receipt(f"r{failed}-1", UNDELIVERABLE, error_code="E" * 60, raw={"why\udc00": "x"}),
    ]
    report = receipts_ingest(receipts=batch)
    assert report.matched == 2
    assert status(delivered) == "delivered"
    recipient = Recipient.objects.get(pk=failed)
    assert (recipient.status, recipient.error_code) == ("failed", "E" * 40)
    kept = UnmatchedReceipt.objects.get()
    assert kept.carrier_message_id == "unknown-\ufffd"
    assert kept.receipt["raw"] == {"k": "v\ufffd"}
