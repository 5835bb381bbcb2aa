"""Delivering to a real local receiver: headers, signatures, retries, timeouts, redirects."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from sms.models import Recipient
from tests.helpers import assert_envelope
from tests.webhooks.conftest import PHONES, change_status, make_message
from tests.webhooks.receiver import Answer
from webhooks import transport, verify_example
from webhooks.delivery import delivery_attempt, delivery_enqueue_due
from webhooks.endpoints import account_signing_secret_ensure, endpoint_create
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event

pytestmark = pytest.mark.django_db


def deliver_now(delivery: Delivery) -> DeliveryAttempt | None:
    return delivery_attempt(delivery_id=delivery.pk)


def run_until_final(delivery: Delivery, budget: float = 20) -> Delivery:
    """Attempt whenever the delivery is due, as the worker would, until it is final."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status != Delivery.Status.PENDING:
            return delivery
        assert delivery.next_attempt_at is not None
        wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
        if wait > 0:
            # Before it is due, nobody may claim it.
            assert deliver_now(delivery) is None
            time.sleep(wait + 0.01)
        deliver_now(delivery)
    raise AssertionError("the delivery did not finish in time")


def test_the_receiver_gets_the_event_with_every_header(alice, alice_key, receiver):
    message = make_message(
        alice, api_key=alice_key.api_key, webhook_url=receiver.url, phones=PHONES[:3]
    )
    change_status(message, Recipient.Status.DELIVERED)
    delivery = Delivery.objects.get()

    attempt = deliver_now(delivery)

    assert attempt is not None and attempt.succeeded
    [request] = receiver.requests
    event = Event.objects.get()
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.body == event.body.encode()
    assert request.json()["message_id"] == message.pk
    assert len(request.json()["recipients"]) == 3
    assert request.header("Authorization") == f"Bearer {alice_key.raw}"
    assert request.header("Content-Type") == "application/json"
    assert request.header("User-Agent").startswith("Mifumo-Webhooks/")
    assert request.header("X-Mifumo-Event") == "message.delivered"
    assert request.header("X-Mifumo-Event-Id") == event.id
    assert request.header("X-Mifumo-Delivery-Id") == delivery.pk
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert delivery.attempts == 1
    assert delivery.last_status_code == 200
    assert delivery.last_response == '{"ok":true}'


def test_message_level_deliveries_are_signed_with_the_account_secret(alice, api, receiver):
    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.SENT)
    deliver_now(Delivery.objects.get())

    [request] = receiver.requests
    header = request.header("X-Mifumo-Signature")
    assert header.startswith("t=")
    secret = assert_envelope(api.get("webhooks/signing-secret/"), 200)["data"]["secret"]
    assert secret.startswith("whsec_")
    assert secret == account_signing_secret_ensure(account_id=alice.pk).secret
    assert verify_example.verify(secret, header, request.body)
    assert not verify_example.verify("whsec_someone-else", header, request.body)
    assert not verify_example.verify(secret, header, request.body + b" ")


def test_endpoint_deliveries_are_signed_with_the_endpoint_secret(alice, receiver):
    endpoint = endpoint_create(account=alice, url=receiver.url)
    change_status(make_message(alice), Recipient.Status.SENT)
    deliver_now(Delivery.objects.get())

    [request] = receiver.requests
    header = request.header("X-Mifumo-Signature")
    assert verify_example.verify(endpoint.secret, header, request.body)
    account_secret = account_signing_secret_ensure(account_id=alice.pk).secret
    assert not verify_example.verify(account_secret, header, request.body)


def test_no_authorization_when_the_account_turned_it_off(alice, alice_key, receiver):
    alice.webhook_send_api_key = False
    alice.save()
    message = make_message(alice, api_key=alice_key.api_key, webhook_url=receiver.url)
    change_status(message, Recipient.Status.SENT)
    deliver_now(Delivery.objects.get())
    assert receiver.requests[0].header("Authorization") is None


def test_no_authorization_for_a_dashboard_message(alice, alice_key, receiver):
    message = make_message(
        alice, api_key=alice_key.api_key, webhook_url=receiver.url, source="dashboard"
    )
    change_status(message, Recipient.Status.SENT)
    deliver_now(Delivery.objects.get())
    assert receiver.requests[0].header("Authorization") is None


def test_eager_queue_delivers_after_commit(alice, receiver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.SENT)
    assert len(receiver.requests) == 1
    assert Delivery.objects.get().status == "succeeded"


def test_500_three_times_then_200_is_delivered_once_with_backoff(alice, receiver, settings):
    settings.MIFUMO_WEBHOOK_RETRY_SCHEDULE = [1, 1, 1, 1]
    receiver.fail(3)
    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.DELIVERED)

    delivery = run_until_final(Delivery.objects.get())

    assert delivery.status == "succeeded"
    assert delivery.attempts == 4
    assert len(receiver.requests) == 4
    assert len({r.body for r in receiver.requests}) == 1
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert all(gap >= 1.0 for gap in gaps), gaps
    # The jitter adds at most 20% to the wait.
    assert all(gap < 1.2 + 0.5 for gap in gaps), gaps
    attempts = list(delivery.attempt_log.order_by("number"))
    assert [a.number for a in attempts] == [1, 2, 3, 4]
    assert [a.status_code for a in attempts] == [500, 500, 500, 200]
    assert [a.succeeded for a in attempts] == [False, False, False, True]
    assert attempts[0].error == "HTTP 500 Internal Server Error"
    assert attempts[0].response_head == "boom"
    assert all(a.latency_ms > 0 for a in attempts)


def test_a_receiver_down_for_the_whole_window_fails_then_redelivers(
    alice, api, receiver, settings, django_capture_on_commit_callbacks
):
    settings.MIFUMO_WEBHOOK_RETRY_SCHEDULE = [1, 1]
    receiver.down()
    message = make_message(alice, webhook_url=receiver.url)
    change_status(message, Recipient.Status.DELIVERED)

    delivery = run_until_final(Delivery.objects.get())

    assert delivery.status == "failed"
    assert delivery.attempts == 3
    assert delivery.next_attempt_at is None
    assert delivery.last_status_code is None
    assert "ConnectError" in delivery.last_error
    listed = assert_envelope(api.get("webhooks/deliveries/", {"message_id": message.pk}), 200)
    [row] = listed["data"]["deliveries"]
    assert row["id"] == delivery.pk
    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert row["webhook_id"] is None
    assert "ConnectError" in row["error"]

    receiver.up()
    with django_capture_on_commit_callbacks(execute=True):
        body = assert_envelope(api.post(f"webhooks/deliveries/{delivery.pk}/redeliver/"), 202)
    again = Delivery.objects.get(pk=body["data"]["id"])
    assert again.redelivery
    assert again.status == "succeeded"
    assert [r.json()["event_id"] for r in receiver.requests] == [delivery.event_id]


def test_a_slow_receiver_times_out_and_is_retried(alice, receiver, settings):
    settings.MIFUMO_WEBHOOK_TIMEOUT = 0.5
    receiver.then(Answer(delay=2))
    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.SENT)
    delivery = Delivery.objects.get()

    first = deliver_now(delivery)
    assert first is not None
    assert first.error == "Timed out after 0.5 s"
    assert first.latency_ms < 1500
    assert first.status_code is None

    delivery = run_until_final(delivery)
    assert delivery.status == "succeeded"
    assert delivery.attempts == 2


def test_a_redirect_is_not_followed(alice, receiver):
    receiver.then(Answer(status=302, headers={"Location": receiver.url_for("/elsewhere")}))
    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.SENT)
    delivery = Delivery.objects.get()

    attempt = deliver_now(delivery)

    assert attempt is not None and not attempt.succeeded
    assert attempt.status_code == 302
    assert "not followed" in attempt.error
    assert receiver.on("/elsewhere") == []
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert delivery.next_attempt_at is not None


def test_410_gone_disables_the_endpoint(alice, receiver):
    endpoint = endpoint_create(account=alice, url=receiver.url)
    receiver.then(Answer(status=410))
    message = make_message(alice)
    change_status(message, Recipient.Status.SENT)

    deliver_now(Delivery.objects.get())

    endpoint.refresh_from_db()
    assert not endpoint.active
    assert "410" in endpoint.disabled_reason
    assert endpoint.disabled_at is not None
    assert Delivery.objects.get().status == "failed"
    # A disabled endpoint gets no new deliveries.
    change_status(message, Recipient.Status.DELIVERED)
    assert Delivery.objects.count() == 1


def test_pending_deliveries_to_an_endpoint_disabled_meanwhile_are_not_sent(alice, receiver):
    endpoint = endpoint_create(account=alice, url=receiver.url)
    change_status(make_message(alice), Recipient.Status.SENT)
    Endpoint.objects.filter(pk=endpoint.pk).update(active=False)

    assert deliver_now(Delivery.objects.get()) is None

    assert receiver.requests == []
    delivery = Delivery.objects.get()
    assert delivery.status == "failed"
    assert "disabled" in delivery.last_error


def test_only_the_first_500_bytes_of_the_response_are_kept(alice, receiver):
    receiver.then(Answer(body=b"x" * 5000))
    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.SENT)
    attempt = deliver_now(Delivery.objects.get())
    assert attempt is not None
    assert attempt.response_head == "x" * 500
    assert Delivery.objects.get().last_response == "x" * 500


def test_a_held_delivery_cannot_be_claimed_again(alice, receiver):
    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.SENT)
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        locked_until=timezone.now() + timedelta(minutes=1), lock_token="someone-else"
    )
    assert deliver_now(delivery) is None
    assert receiver.requests == []

    # A lease that ran out (its worker died) is free to take.
    Delivery.objects.filter(pk=delivery.pk).update(
        locked_until=timezone.now() - timedelta(seconds=1)
    )
    assert deliver_now(delivery) is not None
    assert len(receiver.requests) == 1
    assert deliver_now(delivery) is None


def test_a_finished_delivery_is_never_sent_again(alice, receiver):
    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.SENT)
    delivery = Delivery.objects.get()
    deliver_now(delivery)
    assert deliver_now(delivery) is None
    assert len(receiver.requests) == 1


def test_the_sweep_requeues_only_what_nobody_holds(
    alice, receiver, django_capture_on_commit_callbacks
):
    message = make_message(alice, webhook_url=receiver.url, phones=PHONES[:1])
    change_status(message, Recipient.Status.SENT)
    change_status(message, Recipient.Status.DELIVERED)
    lost, recent = Delivery.objects.order_by("created_at", "id")
    # One whose task the broker lost a while ago, one queued a moment ago.
    Delivery.objects.filter(pk=lost.pk).update(enqueued_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_enqueue_due() == 1

    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.status == "succeeded"
    assert recent.status == "pending"
    assert [r.json()["event_id"] for r in receiver.requests] == [lost.event_id]


def test_an_endpoint_deleted_while_its_delivery_is_in_flight(alice, receiver, monkeypatch):
    endpoint = endpoint_create(account=alice, url=receiver.url)
    change_status(make_message(alice), Recipient.Status.SENT)
    real_post = transport.post

    def post_then_delete(*args, **kwargs):
        outcome = real_post(*args, **kwargs)
        Endpoint.objects.filter(pk=endpoint.pk).delete()
        return outcome

    monkeypatch.setattr(transport, "post", post_then_delete)
    attempt = deliver_now(Delivery.objects.get())

    assert attempt is not None and attempt.pk is None
    assert len(receiver.requests) == 1
    assert not Delivery.objects.exists()
    assert not DeliveryAttempt.objects.exists()


def test_the_request_body_is_the_stored_event(alice, receiver):
    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.FAILED)
    deliver_now(Delivery.objects.get())
    assert receiver.requests[0].json() == json.loads(Event.objects.get().body)
