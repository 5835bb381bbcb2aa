"""Deliveries claimed many at a time and sent concurrently: every one signed and logged per
attempt, one slow or failing receiver holding up none of the others, and nothing lost when the
worker sending a batch dies."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import InvalidToken
from django.utils import timezone

from sms.models import Recipient
from tests.webhooks.conftest import change_status, make_message
from tests.webhooks.receiver import Answer, Receiver
from tests.webhooks.slow_receiver import DribblingReceiver
from tests.workers import wait_until
from webhooks import drain as webhook_drain
from webhooks import outbox, signing
from webhooks.delivery import REQUEUE_AFTER, signed_headers
from webhooks.endpoints import account_signing_secret_ensure, endpoint_create
from webhooks.models import Delivery, DeliveryAttempt, Endpoint
from webhooks.tasks import deliver_drain, deliver_due

WORKER_ENV = {
    "MIFUMO_WEBHOOK_ALLOW_PRIVATE": "true",
    "MIFUMO_WEBHOOK_TIMEOUT": "5",
    "MIFUMO_WEBHOOK_CONCURRENCY": "16",
}


@pytest.fixture(autouse=True)
def _fresh_senders() -> None:
    """No kept-alive connection from an earlier test: a receiver here may listen on a port
    an earlier test's server used, whose open connections would answer in its place."""
    pool = webhook_drain._senders.pop(os.getpid(), None)
    if pool is not None:
        pool.shutdown(wait=True)
        gc.collect()


@pytest.fixture
def quiet_outbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Events are written but nothing is queued: the test decides when a drain runs."""
    with monkeypatch.context() as patch:
        patch.setattr(outbox, "_enqueue", lambda *args, **kwargs: None)
        yield


def _write(account: Any, url: str, count: int, **kwargs: Any) -> list[str]:
    for _ in range(count):
        change_status(make_message(account, webhook_url=url, **kwargs), Recipient.Status.SENT)
    return list(Delivery.objects.filter(url=url).values_list("pk", flat=True))


@pytest.mark.django_db
def test_a_drain_sends_every_due_delivery_signed_and_logs_each_attempt(
    alice, alice_key, receiver, settings, quiet_outbox
):
    settings.MIFUMO_WEBHOOK_CONCURRENCY = 4
    settings.MIFUMO_WEBHOOK_RETRY_SCHEDULE = [60]
    failing = Receiver().fail(1, status=503)
    down = Receiver()
    down.stop()
    try:
        good = _write(alice, receiver.url, 30, api_key=alice_key.api_key)
        [bad] = _write(alice, failing.url, 1)
        [gone] = _write(alice, down.url, 1)

        assert webhook_drain.delivery_drain() == 32
    finally:
        failing.stop()

    secret = account_signing_secret_ensure(account_id=alice.pk).secret
    errors = Counter(Delivery.objects.filter(pk__in=good).values_list("last_error", flat=True))
    assert len(receiver.requests) == 30, errors
    for request in receiver.requests:
        header = request.header("X-Mifumo-Signature") or ""
        timestamp = int(header.split(",")[0].removeprefix("t="))
        assert header == signing.signature_header([secret], timestamp, request.body)
        assert request.header("Authorization") == f"Bearer {alice_key.raw}"
    assert sorted(receiver.event_ids()) == sorted(
        Delivery.objects.filter(pk__in=good).values_list("event_id", flat=True)
    )
    # One attempt row per delivery, however many went out together.
    assert Counter(DeliveryAttempt.objects.values_list("delivery_id", flat=True)) == dict.fromkeys(
        [*good, bad, gone], 1
    )
    assert set(Delivery.objects.filter(pk__in=good).values_list("status", flat=True)) == {
        "succeeded"
    }
    for pk, code in ((bad, 503), (gone, None)):
        delivery = Delivery.objects.get(pk=pk)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "pending",
            1,
            code,
        )
        assert delivery.locked_until is None and delivery.next_attempt_at is not None
        assert delivery.next_attempt_at > timezone.now()
        attempt = DeliveryAttempt.objects.get(delivery_id=pk)
        assert not attempt.succeeded and attempt.error
    # Nothing is due now: a second drain sends nothing.
    assert webhook_drain.delivery_drain() == 0
    assert len(receiver.requests) == 30


@pytest.mark.django_db
def test_a_batch_task_sends_exactly_its_deliveries(alice, receiver, settings, quiet_outbox):
    settings.MIFUMO_WEBHOOK_CONCURRENCY = 2
    ids = _write(alice, receiver.url, 5)
    from webhooks import tasks

    tasks.deliver_each(ids[:3])
    assert sorted(Delivery.objects.filter(status="succeeded").values_list("pk", flat=True)) == (
        sorted(ids[:3])
    )
    assert len(receiver.requests) == 3
    # Sent already: a second task for the same deliveries sends nothing.
    tasks.deliver_each(ids[:3])
    assert len(receiver.requests) == 3


@pytest.mark.django_db
def test_a_batch_keeps_the_endpoint_rules(alice, receiver, quiet_outbox):
    gone = Receiver().then(Answer(status=410))
    try:
        answered_gone = endpoint_create(account=alice, url=gone.url)
        disabled = endpoint_create(account=alice, url=receiver.url_for("/off"))
        _write(alice, receiver.url, 1)  # to its webhook_url and to both endpoints
        Endpoint.objects.filter(pk=disabled.pk).update(active=False, disabled_reason="turned off")

        assert webhook_drain.delivery_drain() == 2
    finally:
        gone.stop()

    assert receiver.on("/off") == []
    [unsent] = Delivery.objects.filter(endpoint=disabled)
    assert unsent.status == "failed" and unsent.attempts == 0
    assert unsent.last_error == "Not sent: the endpoint is disabled (turned off)"
    answered_gone.refresh_from_db()
    assert not answered_gone.active and "410" in answered_gone.disabled_reason
    assert Delivery.objects.get(endpoint=answered_gone).status == "failed"
    assert len(receiver.on("/hook")) == 1


@pytest.mark.django_db
def test_a_delivery_that_cannot_be_signed_fails_alone(
    alice, receiver, settings, monkeypatch, quiet_outbox
):
    settings.MIFUMO_WEBHOOK_RETRY_SCHEDULE = [60]
    ids = _write(alice, receiver.url, 6)
    real_headers = signed_headers

    def headers(delivery: Delivery, *args: Any) -> dict[str, str]:
        if delivery.pk == ids[2]:
            raise InvalidToken
        return real_headers(delivery, *args)

    monkeypatch.setattr(webhook_drain, "signed_headers", headers)
    assert webhook_drain.delivery_drain() == 6

    assert len(receiver.requests) == 5
    broken = Delivery.objects.get(pk=ids[2])
    assert (broken.status, broken.attempts, broken.locked_until) == ("pending", 1, None)
    assert broken.last_error == "Not sent: InvalidToken while signing"
    assert broken.next_attempt_at is not None and broken.next_attempt_at > timezone.now()
    assert Delivery.objects.filter(status="succeeded").count() == 5


@pytest.mark.django_db(transaction=True)
def test_a_slow_receiver_does_not_hold_up_the_rest_of_the_batch(
    alice, receiver, settings, quiet_outbox
):
    settings.MIFUMO_WEBHOOK_CONCURRENCY = 4
    settings.MIFUMO_WEBHOOK_TIMEOUT = 5
    slow = DribblingReceiver(fast=0, interval=0.5)  # answers nothing within the deadline
    try:
        [stuck] = _write(alice, slow.url, 1)
        fast = _write(alice, receiver.url, 40)
        drain = threading.Thread(target=webhook_drain.delivery_drain)
        started = time.monotonic()
        drain.start()
        wait_until(
            lambda: Delivery.objects.filter(pk__in=fast, status="succeeded").count() == 40,
            timeout=5,
        )
        recorded_after = time.monotonic() - started
        # Recorded while the slow one is still in flight, under its lease.
        held = Delivery.objects.get(pk=stuck)
        assert held.attempts == 0 and held.locked_until is not None
        assert recorded_after < 4
        assert DeliveryAttempt.objects.filter(delivery_id__in=fast).count() == 40
        drain.join(10)
        assert not drain.is_alive()
    finally:
        slow.stop()
    held.refresh_from_db()
    assert held.attempts == 1 and held.status == "pending" and held.locked_until is None
    assert held.last_error == "Timed out after 5 s"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing(
    alice, receiver, celery_worker_factory, quiet_outbox
):
    ids = _write(alice, receiver.url, 40)
    # The first 16 requests (one per sending thread) hang long enough for the kill.
    receiver.then(*[Answer(delay=4) for _ in range(16)])
    doomed = celery_worker_factory(name="doomed", **WORKER_ENV)
    deliver_drain.delay()
    wait_until(lambda: len(receiver.requests) >= 16, timeout=20)
    doomed.kill(signal.SIGKILL)

    # The batch was claimed and is still leased; no attempt of it was recorded.
    assert Delivery.objects.filter(pk__in=ids, locked_until__gt=timezone.now()).count() == 40
    assert not DeliveryAttempt.objects.exists()
    assert webhook_drain.delivery_drain() == 0  # held: nobody else may send it meanwhile

    # The leases run out (as if their time had passed) and the periodic sweep re-sends.
    past = timezone.now() - REQUEUE_AFTER
    Delivery.objects.update(locked_until=past, enqueued_at=past)
    celery_worker_factory(name="rescuer", **WORKER_ENV)
    deliver_due.delay()

    wait_until(
        lambda: Delivery.objects.filter(pk__in=ids, status="succeeded").count() == 40, timeout=30
    )
    events = set(Delivery.objects.values_list("event_id", flat=True))
    assert set(receiver.event_ids()) == events
    assert Counter(DeliveryAttempt.objects.values_list("delivery_id", flat=True)) == dict.fromkeys(
        ids, 1
    )
    # Only the requests the killed worker had in flight reached the receiver twice.
    repeats = [e for e, n in Counter(receiver.event_ids()).items() if n > 1]
    assert len(repeats) <= 16
