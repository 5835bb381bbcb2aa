"""Receipts the SMSC was already told about survive a database that cannot take them for a
while: a real worker's ingestion that fails on a lock timeout goes back on the queue and is
applied once the database lets it."""

from __future__ import annotations

from typing import Any

import pytest
from celery.signals import before_task_publish
from django.db import transaction
from django.utils import timezone

from sms import dispatch
from sms.carriers.base import DeliveryReceipt, DeliveryStatus
from sms.models import CarrierMessage, Recipient
from sms.receipts import enqueue_receipts, receipt_to_dict
from sms.services import message_send
from sms.tasks import ingest_receipts
from tests.workers import broker_down, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.django_db(transaction=True),
]

pytest_plugins = ["tests.workers"]

S = Recipient.Status


def sent(
    account: Any, monkeypatch: pytest.MonkeyPatch, phone: str
) -> tuple[Recipient, DeliveryReceipt]:
    """A message to ``phone`` dispatched here (the simulator took it), and the receipt that
    says it was delivered."""
    monkeypatch.setattr("sms.services._enqueue_dispatch", lambda message_id: None)
    message = message_send(account=account, text="Habari", recipients=[phone]).message
    dispatch.message_dispatch(message_id=message.id)
    row = Recipient.objects.get(message=message)
    assert row.status == S.SENT
    part = CarrierMessage.objects.get(recipient=row)
    receipt = DeliveryReceipt(
        part.carrier, part.carrier_message_id, DeliveryStatus.DELIVERED, timezone.now()
    )
    return row, receipt


def test_a_receipt_whose_ingestion_hits_a_lock_timeout_is_applied_later(
    alice: Any, locmem: Any, monkeypatch: pytest.MonkeyPatch, celery_worker_factory: Any
) -> None:
    row, receipt = sent(alice, monkeypatch, "+255712000001")
    # The worker's sessions give up on a row lock after 200 ms.
    worker = celery_worker_factory(queues="receipts", PGOPTIONS="-c lock_timeout=200")
    with transaction.atomic():
        Recipient.objects.select_for_update().get(id=row.id)  # held while the worker tries
        ingest_receipts.delay([receipt_to_dict(receipt)])
        worker.wait_for("trying again in 1s", timeout=30)
        worker.wait_for("trying again in 2s", timeout=30)  # and again, still locked
    # The lock is gone: a later try applies it; nothing was acknowledged and lost.
    wait_until(lambda: Recipient.objects.get(id=row.id).status == S.DELIVERED, timeout=30)
    assert "lock timeout" in worker.output()
    assert Recipient.objects.get(id=row.id).delivered_at is not None


def test_receipts_reach_the_worker_shown_as_a_count_not_as_their_numbers(
    alice: Any, locmem: Any, monkeypatch: pytest.MonkeyPatch, celery_worker_factory: Any
) -> None:
    row, receipt = sent(alice, monkeypatch, "+255712000002")
    published: list[tuple[str, dict[str, Any]]] = []

    def seen(sender: str, headers: dict[str, Any], **kwargs: Any) -> None:
        published.append((sender, headers))

    celery_worker_factory(queues="receipts")
    before_task_publish.connect(seen, weak=False)
    try:
        enqueue_receipts([receipt, receipt])
    finally:
        before_task_publish.disconnect(seen)  # type: ignore[attr-defined]
    # Through the real broker to the worker, which applies them as usual.
    wait_until(lambda: Recipient.objects.get(id=row.id).status == S.DELIVERED, timeout=30)
    assert [(sender, headers["argsrepr"]) for sender, headers in published] == [
        ("sms.tasks.ingest_receipts", "[2 receipts]")
    ]
    assert "255712000002" not in repr(published)


def test_receipts_are_ingested_in_place_while_the_broker_is_down(
    alice: Any,
    locmem: Any,
    monkeypatch: pytest.MonkeyPatch,
    celery_worker_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Tasks go to the broker (no worker started), and the broker cannot be reached.
    row, receipt = sent(alice, monkeypatch, "+255712000003")
    with broker_down():
        enqueue_receipts([receipt])
    assert Recipient.objects.get(id=row.id).status == S.DELIVERED
    assert "broker unavailable; ingesting 1 receipts inline" in caplog.text
