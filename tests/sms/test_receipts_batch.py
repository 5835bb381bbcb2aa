"""A batch of status changes is signalled once: receipts for many messages, a carrier batch
spanning messages, an expiry sweep. The webhook outbox is written in the same transaction,
one event per message and status, with a number of queries that does not grow with the
number of messages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY

from mifumo.api.fields import iso
from sms import dispatch
from sms.carriers.base import DeliveryReceipt, DeliveryStatus
from sms.models import CarrierMessage, Message, Recipient
from sms.receipts import receipts_ingest
from sms.services import message_send
from sms.signals import StatusChange, recipients_status_changed_batch
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, Event

pytestmark = pytest.mark.django_db

HOOK = "http://127.0.0.1:9/hook"
DELIVERED = "+255712345678"
UNDELIVERABLE = "+255754000111"


@pytest.fixture(autouse=True)
def _private_hooks(settings: Any) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True  # the hooks point at 127.0.0.1


@pytest.fixture
def batches() -> Iterator[list[list[StatusChange]]]:
    """Every batch signal sent during the test, in order."""
    sent: list[list[StatusChange]] = []

    def record(sender: Any, *, changes: list[StatusChange], **kwargs: Any) -> None:
        sent.append(list(changes))

    recipients_status_changed_batch.connect(record, dispatch_uid="tests.record_batches")
    yield sent
    recipients_status_changed_batch.disconnect(dispatch_uid="tests.record_batches")


def sent_messages(
    account: Any, count: int, phones: tuple[str, ...] = (DELIVERED, UNDELIVERABLE), **kw: Any
) -> list[Message]:
    """Messages already submitted through the in-memory carrier (their recipients ``sent``)."""
    messages = []
    for _ in range(count):
        message = message_send(
            account=account, text="Habari", recipients=list(phones), webhook_url=HOOK, **kw
        ).message
        dispatch.message_dispatch(message_id=message.id)
        messages.append(message)
    return messages


def receipts_for(messages: list[Message], at: Any) -> list[DeliveryReceipt]:
    """DELIVERED for the first number, UNDELIVERABLE for the second; shuffled across the
    messages as a carrier sends them."""
    parts = CarrierMessage.objects.filter(recipient__message__in=messages).values_list(
        "carrier", "carrier_message_id", "recipient__phone"
    )
    receipts = [
        DeliveryReceipt(
            carrier,
            carrier_id,
            DeliveryStatus.DELIVERED if phone == DELIVERED else DeliveryStatus.UNDELIVERABLE,
            at,
            None if phone == DELIVERED else "001",
        )
        for carrier, carrier_id, phone in parts
    ]
    return receipts[::2] + receipts[1::2]


@pytest.mark.usefixtures("locmem")
def test_a_receipts_batch_for_many_messages_is_one_signal(alice, batches):
    messages = sent_messages(alice, 5)
    batches.clear()

    report = receipts_ingest(receipts=receipts_for(messages, timezone.now()))

    assert report.changed == 10
    assert len(batches) == 1
    rows = {r.pk: r for r in Recipient.objects.filter(message__in=messages)}
    assert sorted(
        (c.message_id, c.account_id, c.status, [rows[i].phone for i in c.recipient_ids])
        for c in batches[0]
    ) == sorted(
        (m.pk, alice.pk, status, [phone])
        for m in messages
        for status, phone in (("delivered", DELIVERED), ("failed", UNDELIVERABLE))
    )


@pytest.mark.usefixtures("locmem")
def test_receipts_for_many_messages_write_one_event_per_message_and_status(alice, alice_key):
    everything = endpoint_create(account=alice, url="http://127.0.0.1:9/all")
    failed_only = endpoint_create(
        account=alice, url="http://127.0.0.1:9/failed", events=["message.failed"]
    )
    messages = sent_messages(alice, 4, api_key=alice_key.api_key)
    Event.objects.all().delete()
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=1)

    receipts_ingest(receipts=receipts_for(messages, at))

    assert Event.objects.count() == 8
    for message in messages:
        delivered = Event.objects.get(message=message, type="message.delivered")
        assert delivered.api_key_id == alice_key.api_key.pk
        assert delivered.payload == {
            "event_id": delivered.id,
            "event": "message.delivered",
            "created_at": iso(delivered.created_at),
            "message_id": message.pk,
            "status": "delivered",
            "recipients": [{"phone": DELIVERED, "status": "delivered", "delivery_time": iso(at)}],
            "metadata": {"sender_id": message.sender_id, "cost": 20.0, "currency": "TZS"},
        }
        failed = Event.objects.get(message=message, type="message.failed").payload
        assert failed["status"] == "failed"
        assert failed["recipients"] == [
            {"phone": UNDELIVERABLE, "status": "failed", "delivery_time": None}
        ]
        assert failed["metadata"] == delivered.payload["metadata"]
        assert {(d.endpoint_id, d.url) for d in Delivery.objects.filter(event=delivered)} == {
            (None, HOOK),
            (everything.pk, everything.url),
        }
        assert {
            d.endpoint_id
            for d in Delivery.objects.filter(event__message=message, event__type="message.failed")
        } == {None, everything.pk, failed_only.pk}


def queries_to_ingest(account: Any, count: int) -> int:
    messages = sent_messages(account, count)
    receipts = receipts_for(messages, timezone.now())
    with CaptureQueriesContext(connection) as captured:
        receipts_ingest(receipts=receipts)
    assert Event.objects.filter(message__in=messages).exclude(type="message.sent").count() == (
        2 * count
    )
    return len(captured)


@pytest.mark.usefixtures("locmem")
@pytest.mark.parametrize("count", [1, 12, 40])
def test_ingesting_receipts_takes_a_few_queries_however_many_messages(
    alice, count, django_assert_max_num_queries
):
    endpoint_create(account=alice, url="http://127.0.0.1:9/all")
    messages = sent_messages(alice, count)
    receipts = receipts_for(messages, timezone.now())
    # The savepoint, matching parts, two part updates, the multipart check, locking the
    # recipients, two outcome writes, then the outbox: messages, endpoints, recipients, the
    # events and the deliveries; and the failed recipients' errors, for carrier opt-outs.
    with django_assert_max_num_queries(14):
        receipts_ingest(receipts=receipts)
    assert Event.objects.exclude(type="message.sent").count() == 2 * count


@pytest.mark.usefixtures("locmem")
def test_one_message_or_sixty_take_the_same_queries(alice):
    endpoint_create(account=alice, url="http://127.0.0.1:9/all")
    assert queries_to_ingest(alice, 1) == queries_to_ingest(alice, 60) <= 14


@pytest.mark.usefixtures("locmem")
def test_the_events_roll_back_with_the_status_change(alice):
    messages = sent_messages(alice, 3)
    before = Event.objects.count()

    def refuse(sender: Any, **kwargs: Any) -> None:
        # Connected after the webhooks app: its outbox rows are written when this raises.
        assert Event.objects.count() > before
        raise RuntimeError("a later receiver failed")

    recipients_status_changed_batch.connect(refuse, dispatch_uid="tests.refuse")
    try:
        with pytest.raises(RuntimeError):
            receipts_ingest(receipts=receipts_for(messages, timezone.now()))
    finally:
        recipients_status_changed_batch.disconnect(dispatch_uid="tests.refuse")

    assert Event.objects.count() == before
    assert set(Recipient.objects.values_list("status", flat=True)) == {"sent"}
    assert set(CarrierMessage.objects.values_list("status", flat=True)) == {""}


@pytest.mark.usefixtures("locmem")
def test_an_outer_rollback_takes_the_events_with_it(alice):
    messages = sent_messages(alice, 3)
    before = Event.objects.count()

    def ingest_then_fail() -> None:
        with transaction.atomic():
            receipts_ingest(receipts=receipts_for(messages, timezone.now()))
            assert Event.objects.count() == before + 6
            raise RuntimeError("the task failed after ingesting")

    with pytest.raises(RuntimeError):
        ingest_then_fail()

    assert Event.objects.count() == before
    assert set(Recipient.objects.values_list("status", flat=True)) == {"sent"}


def test_a_carrier_batch_across_messages_is_one_signal(alice, locmem, batches):
    locmem.reject = {UNDELIVERABLE: ("INVALID_DEST", True)}
    messages = [
        message_send(
            account=alice, text="Habari", recipients=[DELIVERED, UNDELIVERABLE], webhook_url=HOOK
        ).message
        for _ in range(3)
    ]
    items = [
        dispatch.Item(recipient_id, phone, message, ("locmem",))
        for message in messages
        for recipient_id, phone in dispatch.claim(message.id, 10)
    ]

    report = dispatch.deliver(items=items)

    assert report.submitted == 3 and report.failed == 3
    assert len(batches) == 1
    assert sorted((c.message_id, c.status, len(c.recipient_ids)) for c in batches[0]) == sorted(
        (m.pk, status, 1) for m in messages for status in ("sent", "failed")
    )
    assert Event.objects.filter(type="message.sent").count() == 3
    assert Event.objects.filter(type="message.failed").count() == 3


def test_recording_one_message_signals_its_failures_and_sends_together(alice, locmem, batches):
    locmem.reject = {UNDELIVERABLE: ("INVALID_DEST", True)}
    message = message_send(
        account=alice, text="Habari", recipients=[DELIVERED, UNDELIVERABLE]
    ).message

    dispatch.message_dispatch(message_id=message.id)

    assert [[(c.message_id, c.account_id, c.status) for c in batch] for batch in batches] == [
        [(message.pk, alice.pk, "failed"), (message.pk, alice.pk, "sent")]
    ]


@pytest.mark.usefixtures("locmem")
def test_an_expiry_sweep_is_one_signal_per_chunk(alice, settings, batches):
    messages = sent_messages(alice, 4)
    batches.clear()
    settings.MIFUMO_RECEIPT_TIMEOUT_SECONDS = 60

    expired = dispatch.expire_unconfirmed(now=timezone.now() + timedelta(seconds=61))

    assert expired == 8
    assert len(batches) == 1
    assert sorted((c.message_id, c.status, len(c.recipient_ids)) for c in batches[0]) == sorted(
        (m.pk, "failed", 2) for m in messages
    )
    assert Event.objects.filter(type="message.failed").count() == 4
    row = Recipient.objects.filter(message=messages[0]).first()
    assert row is not None and row.error_code == "EXPIRED"


def test_status_metrics_count_every_change_of_a_batch_after_commit(
    django_capture_on_commit_callbacks,
):
    def value(status: str) -> float:
        found = REGISTRY.get_sample_value(
            "mifumo_recipient_status_changes_total", {"status": status}
        )
        return found or 0.0

    delivered, failed = value("delivered"), value("failed")
    with django_capture_on_commit_callbacks() as callbacks:
        recipients_status_changed_batch.send(
            sender=Recipient,
            changes=[
                StatusChange("msg_a", 1, "delivered", [1, 2]),
                StatusChange("msg_b", 1, "delivered", [3]),
                StatusChange("msg_b", 1, "failed", [4]),
            ],
        )
    assert (value("delivered"), value("failed")) == (delivered, failed)
    for callback in callbacks:
        callback()
    assert (value("delivered"), value("failed")) == (delivered + 3, failed + 1)
