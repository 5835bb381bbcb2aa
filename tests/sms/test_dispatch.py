"""Dispatch through the in-memory carrier: claims, results, refunds, retries."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from integration.models import LedgerEntry
from sms import dispatch
from sms.carriers import get_carrier
from sms.carriers.base import CarrierError, DeliveryReceipt, DeliveryStatus, SubmitResult
from sms.carriers.locmem import LocmemCarrier
from sms.dispatch.record import results_record
from sms.models import CarrierMessage, Recipient
from sms.receipts import receipts_ingest
from sms.services import message_send

TZ = "+255712345678"
TZ2 = "+255754000111"
TZ3 = "+255689000222"


def make_message(account, phones=(TZ, TZ2), text="Habari"):
    return message_send(account=account, text=text, recipients=list(phones)).message


@pytest.mark.django_db
def test_dispatch_submits_every_recipient_once_and_marks_them_sent(alice, locmem):
    message = make_message(alice, (TZ, TZ2, TZ3))
    report = dispatch.message_dispatch(message_id=message.id)
    assert report.submitted == 3
    assert sorted(s.to for s in locmem.outbox) == sorted([TZ, TZ2, TZ3])
    rows = Recipient.objects.filter(message=message)
    assert {r.status for r in rows} == {"sent"}
    assert all(r.sent_at and r.carrier == "locmem" and r.carrier_message_id for r in rows)
    assert CarrierMessage.objects.count() == 3
    # Nothing left to claim: a second dispatch sends nothing again.
    assert dispatch.message_dispatch(message_id=message.id).submitted == 0
    assert len(locmem.outbox) == 3


@pytest.mark.django_db
def test_small_batches_cover_every_recipient(alice, locmem, settings):
    settings.MIFUMO_DISPATCH_BATCH = 2
    phones = [f"+2557120000{i:02d}" for i in range(7)]
    message = make_message(alice, phones)
    assert dispatch.message_dispatch(message_id=message.id).submitted == 7
    assert sorted(s.to for s in locmem.outbox) == sorted(phones)


@pytest.mark.django_db
def test_permanent_rejection_fails_the_recipient_and_refunds_it(alice, locmem):
    locmem.reject = {TZ2: ("INVALID_DEST", True)}
    message = make_message(alice)
    dispatch.message_dispatch(message_id=message.id)
    failed = Recipient.objects.get(message=message, phone=TZ2)
    assert failed.status == "failed" and failed.error_code == "INVALID_DEST"
    assert Recipient.objects.get(message=message, phone=TZ).status == "sent"
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")  # 20 debited, 10 refunded
    refund = LedgerEntry.objects.get(account=alice, kind="refund")
    assert refund.amount == Decimal("10.00") and refund.reference == message.id


@pytest.mark.django_db
def test_temporary_rejection_requeues_then_fails_after_the_attempt_limit(alice, locmem, settings):
    settings.MIFUMO_MAX_SUBMIT_ATTEMPTS = 3
    locmem.reject = {TZ: ("THROTTLED", False)}
    message = make_message(alice, (TZ,))
    for attempt in range(1, 4):
        report = dispatch.message_dispatch(message_id=message.id)
        row = Recipient.objects.get(message=message)
        assert row.attempts == attempt
        if attempt < 3:
            assert row.status == "queued" and report.retry_in is not None
    assert row.status == "failed" and row.error_code == "THROTTLED"
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")


@pytest.mark.django_db
def test_carrier_outage_requeues_the_batch_without_charging_twice(alice, locmem):
    locmem.fail_next = CarrierError("connection refused", permanent=False)
    message = make_message(alice)
    report = dispatch.message_dispatch(message_id=message.id)
    assert report.requeued == 2 and report.retry_in is not None
    assert set(Recipient.objects.values_list("status", flat=True)) == {"queued"}
    assert dispatch.message_dispatch(message_id=message.id).submitted == 2
    alice.refresh_from_db()
    assert alice.balance == Decimal("4980.00")
    assert LedgerEntry.objects.filter(account=alice, kind="debit").count() == 1


@pytest.mark.django_db
def test_permanent_carrier_error_fails_and_refunds_everyone(alice, locmem):
    locmem.fail_next = CarrierError("bad credentials", permanent=True, code="BIND_FAILED")
    message = make_message(alice)
    dispatch.message_dispatch(message_id=message.id)
    assert set(Recipient.objects.values_list("error_code", flat=True)) == {"BIND_FAILED"}
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")


@pytest.mark.django_db
def test_receipts_move_sent_recipients_to_final_states(alice, locmem):
    message = make_message(alice)
    dispatch.message_dispatch(message_id=message.id)
    ok_row = Recipient.objects.get(phone=TZ)
    bad_row = Recipient.objects.get(phone=TZ2)
    now = timezone.now()
    carrier = get_carrier("locmem")
    assert isinstance(carrier, LocmemCarrier)
    carrier.deliver(
        [
            DeliveryReceipt("locmem", ok_row.carrier_message_id, DeliveryStatus.DELIVERED, now),
            DeliveryReceipt("locmem", bad_row.carrier_message_id, DeliveryStatus.EXPIRED, now),
        ]
    )
    ok_row.refresh_from_db()
    bad_row.refresh_from_db()
    assert ok_row.status == "delivered" and ok_row.delivered_at == now
    assert bad_row.status == "failed" and bad_row.error_code == "EXPIRED"
    alice.refresh_from_db()
    assert alice.balance == Decimal("4980.00")  # failure after sent is not refunded


@pytest.mark.django_db
def test_unknown_and_enroute_receipts_change_nothing(alice, locmem):
    message = make_message(alice, (TZ,))
    dispatch.message_dispatch(message_id=message.id)
    row = Recipient.objects.get()
    now = timezone.now()

    report = receipts_ingest(
        receipts=[
            DeliveryReceipt("locmem", row.carrier_message_id, DeliveryStatus.ENROUTE, now),
            DeliveryReceipt("locmem", "never-seen", DeliveryStatus.DELIVERED, now),
            DeliveryReceipt("locmem", row.carrier_message_id, DeliveryStatus.UNKNOWN, now),
        ]
    )
    assert [r.carrier_message_id for r in report.unknown] == ["never-seen"]
    row.refresh_from_db()
    assert row.status == "sent"


@pytest.mark.django_db
def test_duplicate_receipt_is_harmless(alice, locmem):
    message = make_message(alice, (TZ,))
    dispatch.message_dispatch(message_id=message.id)
    row = Recipient.objects.get()

    receipt = DeliveryReceipt(
        "locmem", row.carrier_message_id, DeliveryStatus.DELIVERED, timezone.now()
    )
    assert receipts_ingest(receipts=[receipt]).changed == 1
    assert receipts_ingest(receipts=[receipt]).changed == 0
    late_failure = DeliveryReceipt(
        "locmem", row.carrier_message_id, DeliveryStatus.UNDELIVERABLE, timezone.now()
    )
    assert receipts_ingest(receipts=[late_failure]).changed == 0
    row.refresh_from_db()
    assert row.status == "delivered"


@pytest.mark.django_db
def test_multipart_recipient_is_delivered_only_when_every_part_is(alice):
    message = make_message(alice, (TZ,))
    row = Recipient.objects.get()

    dispatch.claim(message.id, 10)
    dispatch.results_record(
        [
            (
                message,
                "smsc",
                [
                    SubmitResult(
                        recipient_id=row.pk, accepted=True, carrier_message_ids=("a1", "a2", "a3")
                    )
                ],
            )
        ]
    )
    now = timezone.now()
    receipts_ingest(receipts=[DeliveryReceipt("smsc", "a2", DeliveryStatus.DELIVERED, now)])
    row.refresh_from_db()
    assert row.status == "sent"
    receipts_ingest(
        receipts=[
            DeliveryReceipt("smsc", "a1", DeliveryStatus.DELIVERED, now),
            DeliveryReceipt("smsc", "a3", DeliveryStatus.DELIVERED, now),
        ]
    )
    row.refresh_from_db()
    assert row.status == "delivered"


@pytest.mark.django_db
def test_multipart_recipient_fails_when_any_part_fails(alice):
    message = make_message(alice, (TZ,))
    row = Recipient.objects.get()

    dispatch.claim(message.id, 10)
    dispatch.results_record(
        [
            (
                message,
                "smsc",
                [
                    SubmitResult(
                        recipient_id=row.pk, accepted=True, carrier_message_ids=("b1", "b2")
                    )
                ],
            )
        ]
    )
    receipts_ingest(
        receipts=[
            DeliveryReceipt("smsc", "b2", DeliveryStatus.UNDELIVERABLE, timezone.now(), "034")
        ]
    )
    row.refresh_from_db()
    assert row.status == "failed" and row.error_code == "034"


@pytest.mark.django_db
def test_simulator_magic_numbers(alice, django_capture_on_commit_callbacks):
    phones = ["+255712340001", "+255712340002", "+255712340003", "+255712345678"]
    with django_capture_on_commit_callbacks(execute=True):
        message = make_message(alice, phones)
    states = dict(Recipient.objects.filter(message=message).values_list("phone", "status"))
    assert states == {
        "+255712340001": "failed",  # undeliverable receipt
        "+255712340002": "failed",  # rejected at submit
        "+255712340003": "sent",  # never gets a receipt
        "+255712345678": "delivered",
    }
    alice.refresh_from_db()
    assert alice.balance == Decimal("4970.00")  # only the submit rejection is refunded


@pytest.mark.django_db
def test_sent_without_receipt_expires_after_the_timeout(
    alice, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        make_message(alice, ("+255712340003",))
    settings.MIFUMO_RECEIPT_TIMEOUT_SECONDS = 60
    assert dispatch.expire_unconfirmed() == 0
    later = timezone.now() + timedelta(seconds=61)
    assert dispatch.expire_unconfirmed(now=later) == 1
    row = Recipient.objects.get()
    assert row.status == "failed" and row.error_code == "EXPIRED"


@pytest.mark.django_db
def test_expired_claims_are_taken_back_by_the_sweep(alice, settings):
    message = make_message(alice, (TZ,))
    dispatch.claim(message.id, 10)
    assert Recipient.objects.get().status == "submitting"
    assert dispatch.stuck_messages() == []
    later = timezone.now() + timedelta(seconds=settings.MIFUMO_CLAIM_LEASE_SECONDS + 1)
    assert dispatch.stuck_messages(now=later) == [message.id]
    assert Recipient.objects.get().status == "queued"


@pytest.mark.django_db
def test_queued_work_whose_task_was_lost_is_found_by_the_sweep(alice):
    message = make_message(alice, (TZ,))
    later = timezone.now() + timedelta(seconds=61)
    assert dispatch.stuck_messages(now=later) == [message.id]


@pytest.mark.django_db
def test_a_carrier_id_given_twice_is_kept_once_and_fails_nothing(alice):
    message = make_message(alice, (TZ, TZ2))
    ids = list(
        Recipient.objects.filter(message=message).order_by("id").values_list("id", flat=True)
    )
    Recipient.objects.filter(id__in=ids).update(status="submitting")
    report = results_record(
        [(message, "locmem", [SubmitResult(rid, True, ("same-id", f"part-{rid}")) for rid in ids])]
    )
    assert report.submitted == 2 and report.failed == 0
    rows = Recipient.objects.filter(id__in=ids).values_list("status", "carrier_message_id")
    assert set(rows) == {("sent", "same-id")}
    parts = CarrierMessage.objects.order_by("id").values_list(
        "carrier", "carrier_message_id", "recipient_id", "part", "status"
    )
    assert list(parts) == [
        ("locmem", "same-id", ids[0], 1, ""),
        ("locmem", f"part-{ids[0]}", ids[0], 2, ""),
        ("locmem", f"part-{ids[1]}", ids[1], 2, ""),
    ]
