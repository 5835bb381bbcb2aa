"""The outbox: status changes become events and deliveries in the same transaction."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from mifumo.api.fields import iso
from sms.models import Message, Recipient
from sms.signals import StatusChange, send_status_changes
from tests.webhooks.conftest import PHONES, change_status, make_message
from webhooks import drain, outbox
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, Event

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
    ours = [c for c in callbacks if getattr(c, "func", None) is outbox._enqueue]
    assert len(ours) == 1
    assert ours[0].args == ([Delivery.objects.get().pk], None)


def test_dashboard_messages_carry_no_api_key(alice, alice_key):
    message = make_message(alice, api_key=alice_key.api_key, webhook_url=HOOK, source="dashboard")
    change_status(message, Recipient.Status.DELIVERED)
    assert Event.objects.get().api_key is None


# --- a batch of changes: every message and status of one transaction at once --------------------


def change_batch(
    messages: list[Message], status: str, *, per_message: int | None = None
) -> list[StatusChange]:
    """Move recipients of several messages to ``status`` in one transaction with one batch
    signal, as receipts and dispatch do."""
    now = timezone.now()
    changes = []
    for message in messages:
        ids = list(
            Recipient.objects.filter(message=message).order_by("pk").values_list("pk", flat=True)
        )[:per_message]
        changes.append(StatusChange(message.pk, message.account_id, status, ids))
    with transaction.atomic():
        fields: dict[str, Any] = {"status": status, "updated_at": now}
        if status == Recipient.Status.DELIVERED:
            fields["delivered_at"] = now
        Recipient.objects.filter(pk__in=[i for c in changes for i in c.recipient_ids]).update(
            **fields
        )
        send_status_changes(Recipient, changes)
    return changes


def test_a_batch_writes_one_event_per_message_and_status_in_the_guides_shape(alice, alice_key):
    messages = [
        make_message(alice, api_key=alice_key.api_key, webhook_url=f"{HOOK}/{n}", phones=PHONES)
        for n in range(3)
    ]
    change_batch(messages, Recipient.Status.DELIVERED, per_message=2)
    change_batch(messages[:2], Recipient.Status.FAILED)

    assert Event.objects.filter(type="message.delivered").count() == 3
    assert Event.objects.filter(type="message.failed").count() == 2
    for message in messages:
        event = Event.objects.get(message=message, type="message.delivered")
        assert event.api_key_id == alice_key.api_key.pk
        rows = list(Recipient.objects.filter(message=message).order_by("pk")[:2])
        assert event.payload == {
            "event_id": event.id,
            "event": "message.delivered",
            "created_at": iso(event.created_at),
            "message_id": message.pk,
            "status": "delivered",
            "recipients": [
                {"phone": r.phone, "status": "delivered", "delivery_time": iso(r.delivered_at)}
                for r in rows
            ],
            "metadata": {"sender_id": "MIFUMO", "cost": 40.0, "currency": "TZS"},
        }
        assert list(event.payload) == [
            "event_id",
            "event",
            "created_at",
            "message_id",
            "status",
            "recipients",
            "metadata",
        ]
    failed = Event.objects.get(message=messages[0], type="message.failed").payload
    assert [r["phone"] for r in failed["recipients"]] == PHONES
    assert {r["delivery_time"] for r in failed["recipients"]} == {None}


def test_a_batch_delivers_to_each_messages_url_and_the_subscribed_endpoints(alice, bob):
    everything = endpoint_create(account=alice, url="http://127.0.0.1:9/all")
    failed_only = endpoint_create(
        account=alice, url="http://127.0.0.1:9/failed", events=["message.failed"]
    )
    endpoint_create(account=alice, url="http://127.0.0.1:9/off", active=False)
    bobs = endpoint_create(account=bob, url="http://127.0.0.1:9/bob")
    with_url = make_message(alice, webhook_url=HOOK)
    without_url = make_message(alice)
    bobs_message = make_message(bob)

    change_batch([with_url, without_url, bobs_message], Recipient.Status.DELIVERED)

    def destinations(message: Message) -> set[tuple[str | None, str]]:
        event = Event.objects.get(message=message)
        return {(d.endpoint_id, d.url) for d in event.deliveries.all()}

    assert destinations(with_url) == {(None, HOOK), (everything.pk, everything.url)}
    assert destinations(without_url) == {(everything.pk, everything.url)}
    assert destinations(bobs_message) == {(bobs.pk, bobs.url)}
    assert not Delivery.objects.filter(endpoint=failed_only).exists()
    assert Delivery.objects.get(endpoint=bobs).account_id == bob.pk
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}


def test_a_batch_skips_messages_without_destinations_and_other_statuses(alice):
    quiet = make_message(alice)
    loud = make_message(alice, webhook_url=HOOK)
    change_batch([quiet, loud], Recipient.Status.SENT)
    change_batch([loud], Recipient.Status.QUEUED)
    assert list(Event.objects.values_list("message_id", "type")) == [(loud.pk, "message.sent")]


def test_a_batch_chunks_each_message_into_events_of_500_recipients(alice):
    big = make_message(alice, webhook_url=HOOK, phones=[f"+2557{n:08d}" for n in range(1001)])
    small = make_message(alice, webhook_url=HOOK, phones=PHONES[:1])
    change_batch([big, small], Recipient.Status.SENT)
    sizes = sorted(len(e.payload["recipients"]) for e in Event.objects.filter(message=big))
    assert sizes == [1, 500, 500]
    assert Event.objects.filter(message=small).count() == 1
    assert Delivery.objects.count() == 4


@pytest.mark.parametrize("count", [1, 10, 40])
def test_a_batch_takes_the_same_few_queries_however_many_messages(
    alice, alice_key, count, django_assert_max_num_queries
):
    endpoint_create(account=alice, url="http://127.0.0.1:9/all")
    messages = [
        make_message(alice, api_key=alice_key.api_key, webhook_url=HOOK, phones=PHONES[:2])
        for _ in range(count)
    ]
    changes = [
        StatusChange(m.pk, alice.pk, Recipient.Status.SENT, [r.pk for r in m.recipients.all()])
        for m in messages
    ]
    # Messages, endpoints, recipients, then the events and the deliveries.
    with transaction.atomic(), django_assert_max_num_queries(5):
        send_status_changes(Recipient, changes)
    assert Event.objects.count() == count
    assert Delivery.objects.count() == 2 * count


def test_a_batch_with_nowhere_to_go_reads_its_messages_once_and_writes_nothing(
    alice, bob, django_assert_num_queries
):
    # No callback URL; alice has only an inactive and a test endpoint, bob none at all.
    endpoint_create(account=alice, url="http://127.0.0.1:9/off", active=False)
    endpoint_create(account=alice, url="http://127.0.0.1:9/test", test=True)
    messages = [make_message(alice) for _ in range(3)] + [make_message(bob)]
    changes = [
        StatusChange(m.pk, m.account_id, Recipient.Status.SENT, [r.pk for r in m.recipients.all()])
        for m in messages
    ]
    with transaction.atomic(), django_assert_num_queries(1):
        send_status_changes(Recipient, changes)
    assert not Event.objects.exists() and not Delivery.objects.exists()


def test_endpoints_hear_only_their_own_kind_of_traffic(alice):
    live = endpoint_create(account=alice, url="http://127.0.0.1:9/live")
    test = endpoint_create(account=alice, url="http://127.0.0.1:9/test", test=True)
    live_message, test_message = make_message(alice), make_message(alice)
    Message.objects.filter(pk=test_message.pk).update(is_test=True)
    change_batch([live_message, test_message], Recipient.Status.SENT)
    routed = set(Delivery.objects.values_list("event__message_id", "endpoint_id"))
    assert routed == {(live_message.pk, live.pk), (test_message.pk, test.pk)}


def test_a_batch_rolls_back_with_the_status_change(alice):
    messages = [make_message(alice, webhook_url=HOOK) for _ in range(3)]

    def change_then_fail() -> None:
        with transaction.atomic():
            change_batch(messages, Recipient.Status.DELIVERED)
            raise RuntimeError("the carrier update failed")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert set(Recipient.objects.values_list("status", flat=True)) == {"queued"}


def test_a_batch_queues_its_deliveries_once_after_commit(alice, django_capture_on_commit_callbacks):
    endpoint_create(account=alice, url="http://127.0.0.1:9/all")
    messages = [make_message(alice, webhook_url=HOOK) for _ in range(3)]
    with django_capture_on_commit_callbacks() as callbacks:
        change_batch(messages, Recipient.Status.DELIVERED)
        assert set(Delivery.objects.values_list("attempts", flat=True)) == {0}
    ours = [c for c in callbacks if getattr(c, "func", None) is outbox._enqueue]
    assert len(ours) == 1
    assert sorted(ours[0].args[0]) == sorted(Delivery.objects.values_list("pk", flat=True))


def test_many_deliveries_go_on_the_queue_as_one_task_per_500(monkeypatch):
    from webhooks import tasks

    fanned: list[list[str]] = []
    single: list[str] = []
    drains: list[None] = []
    monkeypatch.setattr(tasks.deliver_each, "delay", fanned.append)
    monkeypatch.setattr(tasks.deliver, "delay", single.append)
    monkeypatch.setattr(tasks.deliver_drain, "delay", lambda: drains.append(None))

    ids = [f"dlv_{n}" for n in range(1001)]
    outbox._enqueue(ids)
    assert [len(chunk) for chunk in fanned] == [500, 500, 1]
    assert [i for chunk in fanned for i in chunk] == ids
    assert single == []
    assert drains == []


def test_single_deliveries_wake_one_drain_until_it_starts(monkeypatch):
    from webhooks import tasks

    single: list[str] = []
    drains: list[None] = []
    monkeypatch.setattr(tasks.deliver, "delay", single.append)
    monkeypatch.setattr(tasks.deliver_drain, "delay", lambda: drains.append(None))

    for n in range(50):
        outbox._enqueue([f"dlv_{n}"])
    # Fifty one-event commits, one broker message.
    assert (single, len(drains)) == ([], 1)
    # A drain clears the signal before it claims: the next commit wakes another.
    with monkeypatch.context() as nothing_due:
        nothing_due.setattr(drain, "_deliver_concurrently", lambda *a: (0, False))
        drain.delivery_drain()
    outbox._enqueue(["dlv_next"])
    assert len(drains) == 2


def test_a_drain_signal_the_broker_refuses_is_not_left_standing(monkeypatch, caplog):
    from django.core.cache import cache

    from webhooks import tasks

    def refuse() -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver_drain, "delay", refuse)
    outbox._enqueue(["dlv_a"])
    assert "could not signal a webhook drain" in caplog.text
    # So the next commit tries again rather than waiting for the flag to expire.
    assert cache.get(outbox.DRAIN_FLAG) is None


def test_a_fan_out_the_broker_refuses_is_left_to_the_sweep(monkeypatch, caplog):
    from webhooks import tasks

    def refuse(ids: list[str]) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver_each, "delay", refuse)
    outbox._enqueue(["dlv_a", "dlv_b"])
    assert "could not enqueue 2 webhook deliveries" in caplog.text
