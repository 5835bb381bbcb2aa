from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_set_opted_out
from integration.models import Account, LedgerEntry
from integration.services import account_set_status
from sms import dispatch
from sms.models import Recipient
from sms.sender_ids import sender_id_review
from sms.services import message_send
from tests.helpers import assert_envelope
from webhooks.endpoints import endpoint_create
from webhooks.models import Event

TZ, TZ2 = "+255712345678", "+255754000111"


def scheduled(account, minutes=30, phones=(TZ, TZ2)):
    when = (timezone.now() + timedelta(minutes=minutes)).isoformat()
    return message_send(
        account=account, text="later", recipients=list(phones), schedule_time=when
    ).message


@pytest.mark.django_db
def test_cancel_refunds_a_scheduled_message(api, alice):
    message = scheduled(alice)
    alice.refresh_from_db()
    assert alice.balance == Decimal("4980.00")
    body = assert_envelope(api.post(f"sms/{message.id}/cancel/"), 200)
    assert body["data"] == {
        "message_id": message.id,
        "status": "canceled",
        "canceled": 2,
        "refunded": 20.0,
        "currency": "TZS",
    }
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")
    assert LedgerEntry.objects.get(account=alice, kind="refund").reference == message.id
    status = api.get(f"sms/status/{message.id}/").json()["data"]
    assert status["status"] == "canceled"


@pytest.mark.django_db
def test_cancel_twice_or_after_queueing_is_a_conflict(api, alice):
    message = scheduled(alice)
    assert_envelope(api.post(f"sms/{message.id}/cancel/"), 200)
    again = assert_envelope(api.post(f"sms/{message.id}/cancel/"), 409, "CONFLICT")
    assert again["message"].endswith("this one was canceled already")
    now_message = message_send(account=alice, text="now", recipients=[TZ]).message
    sent = assert_envelope(api.post(f"sms/{now_message.id}/cancel/"), 409, "CONFLICT")
    assert sent["message"].endswith("this one is already on its way")
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")


@pytest.mark.django_db
def test_a_phone_that_opted_out_after_scheduling_is_not_sent_and_is_refunded(alice):
    message = scheduled(alice, minutes=1)
    contact = Contact.objects.create(account=alice, name="Asha", phone_number=TZ)
    contact_set_opted_out(contact=contact, opted_out=True)
    assert dispatch.release_due_messages(now=timezone.now() + timedelta(minutes=2)) == [message.id]
    rows = dict(Recipient.objects.filter(message=message).values_list("phone", "status"))
    assert rows == {TZ: "failed", "+255754000111": "queued"}
    assert Recipient.objects.get(phone=TZ).error_code == "OPTED_OUT"
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")
    refund = LedgerEntry.objects.get(account=alice, kind="refund")
    assert (refund.amount, refund.reference) == (Decimal("10.00"), message.id)


@pytest.fixture
def hooked(alice, settings):
    """An endpoint of alice's, so that status changes make events."""
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    return endpoint_create(account=alice, url="http://127.0.0.1:9/hook")


def failed_whole(message, code, alice, locmem):
    """Every recipient of ``message`` failed with ``code``, refunded, and nothing sent."""
    released = dispatch.release_due_messages(now=timezone.now() + timedelta(minutes=2))
    assert released == []
    dispatch.queued_dispatch()
    assert locmem.outbox == []
    rows = set(Recipient.objects.filter(message=message).values_list("status", "error_code"))
    assert rows == {("failed", code)}
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")
    refund = LedgerEntry.objects.get(account=alice, kind="refund")
    assert (refund.amount, refund.reference) == (Decimal("20.00"), message.id)
    failed = Event.objects.get(message=message, type="message.failed").payload
    assert {r["status"] for r in failed["recipients"]} == {"failed"}


@pytest.mark.django_db
def test_a_message_of_an_account_suspended_before_its_time_is_failed_and_refunded(
    alice, locmem, hooked
):
    message = scheduled(alice, minutes=1)
    account_set_status(account=alice, status=Account.Status.SUSPENDED)
    failed_whole(message, "ACCOUNT_SUSPENDED", alice, locmem)


@pytest.mark.django_db
def test_a_message_whose_sender_id_was_rejected_before_its_time_is_failed_and_refunded(
    alice, locmem, hooked
):
    sender_id_review(account=alice, value="DUKA", approve=True)
    when = (timezone.now() + timedelta(minutes=1)).isoformat()
    message = message_send(
        account=alice, text="later", recipients=[TZ, TZ2], sender_id="DUKA", schedule_time=when
    ).message
    sender_id_review(account=alice, value="DUKA", approve=False)
    failed_whole(message, "INVALID_SENDER_ID", alice, locmem)
    text = Recipient.objects.filter(message=message).values_list("error_message", flat=True)[0]
    assert "DUKA" in text


@pytest.mark.django_db
def test_release_moves_only_due_messages(alice):
    soon = scheduled(alice, minutes=1)
    later = scheduled(alice, minutes=60)
    assert dispatch.release_due_messages() == []
    assert dispatch.release_due_messages(now=timezone.now() + timedelta(minutes=2)) == [soon.id]
    assert set(Recipient.objects.filter(message=soon).values_list("status", flat=True)) == {
        "queued"
    }
    assert set(Recipient.objects.filter(message=later).values_list("status", flat=True)) == {
        "scheduled"
    }
    # Released once: a second pass finds nothing.
    assert dispatch.release_due_messages(now=timezone.now() + timedelta(minutes=2)) == []


@pytest.mark.django_db
def test_canceled_messages_are_never_released(api, alice):
    message = scheduled(alice, minutes=1)
    api.post(f"sms/{message.id}/cancel/")
    assert dispatch.release_due_messages(now=timezone.now() + timedelta(minutes=5)) == []
