"""The outbox: status changes become events and deliveries in the same transaction."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from mifumo.api.fields import iso
from sms.models import Recipient
from tests.webhooks.conftest import PHONES, change_status, make_message
from webhooks import services
from webhooks.models import Delivery, Event
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

HOOK = "http://127.0.0.1:9/hook"


def test_a_status_change_writes_one_event_in_the_guides_shape(alice, alice_key):
    message = make_message(alice, api_key=alice_key.api_key, webhook_url=HOOK, phones=PHONES[:2])
    change_status(message, Recipient.Status.DELIVERED)

    event = Event.objects.get()
    payload = json.loads(event.body)
    assert list(payload) == [
        "event_id",
        "event",
        "created_at",
        "message_id",
        "status",
        "recipients",
        "metadata",
    ]
    assert payload["event_id"] == event.id
    assert event.id.startswith("evt_") and len(event.id) == 30
    assert payload["event"] == "message.delivered"
    assert payload["created_at"].endswith("Z")
    assert payload["message_id"] == message.pk
    assert payload["status"] == "delivered"
    delivered = {r.phone: r.delivered_at for r in Recipient.objects.filter(message=message)}
    assert payload["recipients"] == [
        {
            "phone": phone,
            "status": "delivered",
            "delivery_time": iso(delivered[phone]),
        }
        for phone in PHONES[:2]
    ]
    assert all(r["delivery_time"].endswith("Z") for r in payload["recipients"])
    assert payload["metadata"] == {"sender_id": "MIFUMO", "cost": 20.0, "currency": "TZS"}
    assert event.api_key_id == alice_key.api_key.pk


@pytest.mark.parametrize(
    ("status", "event_type"),
    [("sent", "message.sent"), ("failed", "message.failed")],
)
def test_sent_and_failed_have_their_event_and_no_delivery_time(alice, status, event_type):
    message = make_message(alice, webhook_url=HOOK)
    change_status(message, status)
    payload = Event.objects.get().payload
    assert payload["event"] == event_type
    assert payload["status"] == status
    assert payload["recipients"][0]["delivery_time"] is None


def test_recipients_that_changed_together_are_one_event(alice):
    message = make_message(alice, webhook_url=HOOK, phones=PHONES)
    change_status(message, Recipient.Status.SENT)
    assert Event.objects.count() == 1
    assert len(Event.objects.get().payload["recipients"]) == 4


def test_separate_changes_are_separate_events(alice):
    message = make_message(alice, webhook_url=HOOK, phones=PHONES[:2])
    first, second = Recipient.objects.filter(message=message).order_by("pk")
    change_status(message, Recipient.Status.DELIVERED, [first])
    change_status(message, Recipient.Status.DELIVERED, [second])
    assert Event.objects.count() == 2


def test_large_changes_are_chunked_into_events_of_500_recipients(alice):
    phones = [f"+2557{n:08d}" for n in range(1201)]
    message = make_message(alice, webhook_url=HOOK, phones=phones)
    change_status(message, Recipient.Status.SENT)
    sizes = sorted(len(e.payload["recipients"]) for e in Event.objects.all())
    assert sizes == [201, 500, 500]
    seen = [r["phone"] for e in Event.objects.all() for r in e.payload["recipients"]]
    assert sorted(seen) == sorted(phones)
    assert Delivery.objects.count() == 3


@pytest.mark.parametrize("status", ["queued", "submitting", "scheduled", "canceled"])
def test_other_statuses_make_no_event(alice, status):
    message = make_message(alice, webhook_url=HOOK)
    change_status(message, status)
    assert not Event.objects.exists()


def test_no_destination_means_no_event(alice):
    message = make_message(alice)
    change_status(message, Recipient.Status.DELIVERED)
    assert not Event.objects.exists()


def test_one_delivery_per_destination_and_subscription(alice, bob):
    everything = endpoint_create(account=alice, url="http://127.0.0.1:9/all")
    delivered_only = endpoint_create(
        account=alice, url="http://127.0.0.1:9/delivered", events=["message.delivered"]
    )
    endpoint_create(account=alice, url="http://127.0.0.1:9/off", active=False)
    endpoint_create(account=bob, url="http://127.0.0.1:9/bob")
    message = make_message(alice, webhook_url=HOOK)

    change_status(message, Recipient.Status.SENT)
    sent = Event.objects.get(type="message.sent")
    assert {(d.endpoint_id, d.url) for d in sent.deliveries.all()} == {
        (None, HOOK),
        (everything.pk, everything.url),
    }

    change_status(message, Recipient.Status.DELIVERED)
    delivered = Event.objects.get(type="message.delivered")
    assert {d.endpoint_id for d in delivered.deliveries.all()} == {
        None,
        everything.pk,
        delivered_only.pk,
    }
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}


def test_endpoint_alone_is_a_destination(alice):
    endpoint = endpoint_create(account=alice, url="http://127.0.0.1:9/all")
    change_status(make_message(alice), Recipient.Status.FAILED)
    assert Delivery.objects.get().endpoint == endpoint


def test_events_roll_back_with_the_status_change(alice):
    message = make_message(alice, webhook_url=HOOK)

    def change_then_fail() -> None:
        with transaction.atomic():
            change_status(message, Recipient.Status.DELIVERED)
            raise RuntimeError("the carrier update failed")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_deliveries_are_queued_only_after_commit(alice, django_capture_on_commit_callbacks):
    message = make_message(alice, webhook_url=HOOK)
    with django_capture_on_commit_callbacks() as callbacks:
        change_status(message, Recipient.Status.DELIVERED)
        assert Delivery.objects.count() == 1
        assert Delivery.objects.get().attempts == 0
    # Other apps may listen to the same signal; only this app's callback is counted.
    ours = [c for c in callbacks if getattr(c, "func", None) is services._enqueue]
    assert len(ours) == 1
    assert ours[0].args == ([Delivery.objects.get().pk], None)


def test_dashboard_messages_carry_no_api_key(alice, alice_key):
    message = make_message(alice, api_key=alice_key.api_key, webhook_url=HOOK, source="dashboard")
    change_status(message, Recipient.Status.DELIVERED)
    assert Event.objects.get().api_key is None
