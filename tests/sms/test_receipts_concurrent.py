"""Receipts for the parts of one recipient ingested at the same moment by different workers:
whichever commits last must see every part final and complete the recipient."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from sms import dispatch
from sms.carriers.base import DeliveryReceipt, DeliveryStatus
from sms.models import CarrierMessage, Recipient
from sms.receipts import receipts_ingest
from sms.services import message_send

pytestmark = pytest.mark.timeout(120)

RECIPIENTS = 40
ROUNDS = 6
PARTS = 3


def multipart_recipients(account: Any, round_number: int) -> list[int]:
    """Recipients ``sent`` with PARTS carrier ids each, as a concatenated text leaves them."""
    phones = [f"+2557{round_number:02d}{i:06d}" for i in range(RECIPIENTS)]
    message = message_send(account=account, text="Habari", recipients=phones).message
    dispatch.message_dispatch(message_id=message.id)
    ids = list(message.recipients.order_by("id").values_list("id", flat=True))
    CarrierMessage.objects.filter(recipient_id__in=ids).delete()
    CarrierMessage.objects.bulk_create(
        CarrierMessage(
            carrier="locmem", carrier_message_id=f"r{rid}-{part}", recipient_id=rid, part=part
        )
        for rid in ids
        for part in range(1, PARTS + 1)
    )
    return ids


def ingest_together(batches: list[list[DeliveryReceipt]]) -> list[BaseException]:
    """Each batch in its own thread and connection, released at the same instant."""
    start = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def run(batch: list[DeliveryReceipt]) -> None:
        try:
            start.wait()
            receipts_ingest(receipts=batch)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.django_db(transaction=True)
def test_parts_ingested_concurrently_always_complete_their_recipient(locmem, alice):
    at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    for round_number in range(ROUNDS):
        ids = multipart_recipients(alice, round_number)
        # Each worker holds one part of every recipient, in a different order per worker.
        batches = [
            [
                DeliveryReceipt("locmem", f"r{rid}-{part}", DeliveryStatus.DELIVERED, at)
                for rid in (ids if part % 2 else reversed(ids))
            ]
            for part in range(1, PARTS + 1)
        ]
        assert ingest_together(batches) == []
        states = Counter(Recipient.objects.filter(id__in=ids).values_list("status", flat=True))
        assert states == {Recipient.Status.DELIVERED: RECIPIENTS}, f"round {round_number}"
        assert set(
            CarrierMessage.objects.filter(recipient_id__in=ids).values_list("status", flat=True)
        ) == {DeliveryStatus.DELIVERED.value}


@pytest.mark.django_db(transaction=True)
def test_a_failed_part_fails_its_recipient_whatever_the_order(locmem, alice):
    at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    for round_number in range(3):
        ids = multipart_recipients(alice, 50 + round_number)
        batches = [
            [
                DeliveryReceipt(
                    "locmem",
                    f"r{rid}-{part}",
                    DeliveryStatus.UNDELIVERABLE if part == 2 else DeliveryStatus.DELIVERED,
                    at,
                )
                for rid in ids
            ]
            for part in range(1, PARTS + 1)
        ]
        assert ingest_together(batches) == []
        assert set(Recipient.objects.filter(id__in=ids).values_list("status", flat=True)) == {
            Recipient.Status.FAILED
        }
