"""message.received, contact.opted_out and contact.opted_in: written with the inbound
message, signed and retried like the other events, only to endpoints that subscribe."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from contacts.models import Contact, OptOutChange
from inbox.services import inbound_receive, number_assign
from integration.models import Account
from tests.webhooks.receiver import Receiver
from webhooks import signing
from webhooks.delivery import delivery_attempt
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, Event

NUMBER = "+255700000100"
PHONE = "+255712345678"


def _verify(hit: Any, secret: str) -> None:
    header = hit.header("X-Mifumo-Signature")
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert f"v1={signing.signature(secret, timestamp, hit.body)}" in header


def test_all_three_events_are_signed_and_carry_the_documented_fields(
    alice: Account, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = endpoint_create(account=alice, url=receiver.url)
    number_assign(account=alice, number=NUMBER)
    with django_capture_on_commit_callbacks(execute=True):
        stop, _ = inbound_receive(carrier="locmem", sender=PHONE, destination=NUMBER, text="STOP")
    with django_capture_on_commit_callbacks(execute=True):
        start, _ = inbound_receive(carrier="locmem", sender=PHONE, destination=NUMBER, text="anza")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for hit in receiver.requests:
        _verify(hit, endpoint.secret)
        by_type.setdefault(hit.header("X-Mifumo-Event") or "", []).append(hit.json())
    contact = Contact.objects.get(account=alice, phone_number=PHONE)
    [opted_out] = by_type["contact.opted_out"]
    [opted_in] = by_type["contact.opted_in"]
    assert {k: opted_out[k] for k in ("contact_id", "phone", "source", "inbound_id")} == {
        "contact_id": contact.id,
        "phone": PHONE,
        "source": "keyword",
        "inbound_id": stop.id,
    }
    assert opted_in["inbound_id"] == start.id and opted_in["event"] == "contact.opted_in"
    received = by_type["message.received"]
    assert [r["inbound_id"] for r in received] == [stop.id, start.id]
    assert list(received[0]) == [
        "event_id",
        "event",
        "created_at",
        "inbound_id",
        "from",
        "to",
        "text",
        "keyword",
        "action",
        "received_at",
        "carrier",
        "contact_id",
        "in_reply_to",
    ]
    assert (received[0]["from"], received[0]["to"], received[0]["action"]) == (
        PHONE,
        NUMBER,
        "opt_out",
    )
    assert received[0]["event_id"] == Event.objects.get(pk=received[0]["event_id"]).pk


def test_an_endpoint_gets_only_the_events_it_subscribes_to(
    alice: Account, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_create(account=alice, url=receiver.url, events=["contact.opted_out"])
    number_assign(account=alice, number=NUMBER)
    with django_capture_on_commit_callbacks(execute=True):
        inbound_receive(carrier="locmem", sender=PHONE, destination=NUMBER, text="Stop.")
    assert [hit.header("X-Mifumo-Event") for hit in receiver.requests] == ["contact.opted_out"]


def test_a_failed_inbound_event_is_retried(
    alice: Account, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.fail(1)
    endpoint_create(account=alice, url=receiver.url, events=["message.received"])
    number_assign(account=alice, number=NUMBER)
    with django_capture_on_commit_callbacks(execute=True):
        inbound_receive(carrier="locmem", sender=PHONE, destination=NUMBER, text="Hi")
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.PENDING and delivery.attempts == 1
    Delivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now(), locked_until=None
    )
    delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    bodies = [hit.body for hit in receiver.requests]
    assert len(bodies) == 2 and bodies[0] == bodies[1]


def test_inbound_to_no_account_queues_no_event(
    alice: Account, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_create(account=alice, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        inbound_receive(carrier="locmem", sender=PHONE, destination="+255799999999", text="STOP")
    assert receiver.requests == [] and not Event.objects.exists()


def test_an_api_opt_out_is_recorded_with_its_source_and_announced(
    alice: Account, api: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_create(account=alice, url=receiver.url, events=["contact.opted_out"])
    contact = Contact.objects.create(account=alice, name="Asha", phone_number=PHONE)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"contacts/{contact.pk}/opt-out/").status_code == 200
        assert api.post(f"contacts/{contact.pk}/opt-out/").status_code == 200  # a repeat
    [hit] = receiver.requests
    assert (hit.json()["source"], hit.json()["inbound_id"]) == ("api", None)
    [change] = OptOutChange.objects.filter(contact=contact)
    assert (change.opted_out, change.source) == (True, "api")
