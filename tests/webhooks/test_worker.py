"""Deliveries through a real Celery worker process, PostgreSQL and Redis."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.utils import timezone

from sms.models import Recipient
from tests.webhooks.conftest import PHONES, change_status, make_message
from tests.workers import wait_until
from webhooks import outbox
from webhooks.delivery import REQUEUE_AFTER, delivery_enqueue_due
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, DeliveryAttempt
from webhooks.tasks import deliver_due

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

WORKER_ENV = {
    "MIFUMO_WEBHOOK_ALLOW_PRIVATE": "true",
    "MIFUMO_WEBHOOK_TIMEOUT": "5",
}


def _all_final() -> bool:
    return not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()


def test_events_written_while_no_worker_runs_are_each_delivered_once(
    alice, alice_key, receiver, celery_worker_factory
):
    endpoint = endpoint_create(account=alice, url=receiver.url_for("/endpoint"))
    messages = [
        make_message(alice, api_key=alice_key.api_key, webhook_url=receiver.url, phones=PHONES)
        for _ in range(15)
    ]
    for message in messages:
        change_status(message, Recipient.Status.SENT)
        change_status(message, Recipient.Status.DELIVERED)
    assert Delivery.objects.count() == 60
    # As if the broker had lost half the tasks and the sweep then ran: those deliveries now
    # have two tasks queued (the original and the sweep's), which must not mean two sends.
    half = list(Delivery.objects.order_by("id").values_list("pk", flat=True)[::2])
    Delivery.objects.filter(pk__in=half).update(enqueued_at=None)
    assert delivery_enqueue_due() == 30

    celery_worker_factory(concurrency=4, **WORKER_ENV)
    celery_worker_factory(concurrency=4, **WORKER_ENV)

    wait_until(lambda: len(receiver.requests) >= 60 and _all_final(), timeout=60)
    counts = Counter((r.path, r.json()["event_id"]) for r in receiver.requests)
    assert len(counts) == 60
    assert set(counts.values()) == {1}
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}
    assert DeliveryAttempt.objects.count() == 60
    assert {r.header("Authorization") for r in receiver.requests} == {f"Bearer {alice_key.raw}"}
    assert len(receiver.on("/endpoint")) == 30
    assert endpoint.deliveries.count() == 30


def test_the_retry_schedule_runs_through_the_worker(alice, receiver, celery_worker_factory):
    receiver.fail(2)
    celery_worker_factory(MIFUMO_WEBHOOK_RETRY_SCHEDULE="1,2", **WORKER_ENV)

    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.DELIVERED)

    wait_until(_all_final, timeout=30)
    delivery = Delivery.objects.get()
    assert delivery.status == "succeeded"
    assert delivery.attempts == 3
    assert len(receiver.requests) == 3
    first, second, third = (r.at for r in receiver.requests)
    assert 1.0 <= second - first < 1.2 + 1.0
    assert 2.0 <= third - second < 2.4 + 1.0
    codes = list(delivery.attempt_log.order_by("number").values_list("status_code", flat=True))
    assert codes == [500, 500, 200]


def test_a_receiver_down_for_the_whole_window_is_marked_failed(
    alice, receiver, celery_worker_factory
):
    receiver.down()
    celery_worker_factory(MIFUMO_WEBHOOK_RETRY_SCHEDULE="1,1", **WORKER_ENV)

    change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.FAILED)

    wait_until(_all_final, timeout=30)
    delivery = Delivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.attempts == 3


def test_the_periodic_sweep_delivers_what_the_broker_lost(
    alice, receiver, celery_worker_factory, monkeypatch
):
    celery_worker_factory(**WORKER_ENV)
    with monkeypatch.context() as lost_broker:
        lost_broker.setattr(outbox, "_enqueue", lambda *args, **kwargs: None)
        change_status(make_message(alice, webhook_url=receiver.url), Recipient.Status.SENT)
    Delivery.objects.update(enqueued_at=timezone.now() - REQUEUE_AFTER)
    time.sleep(1)
    assert receiver.requests == []

    deliver_due.delay()

    wait_until(_all_final, timeout=30)
    assert receiver.event_ids() == [Delivery.objects.get().event_id]
