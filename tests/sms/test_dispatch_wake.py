"""The dispatcher woken by a Redis flag rather than a task per send, claiming queued recipients
of every message: one task per wake window, cross-message batches, no lost wake-up, backoff
of recipients in temporary trouble, and the sweep and the scheduler going through the wake."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from sms import dispatch, tasks
from sms.carriers.base import CarrierError
from sms.dispatch.wake import PENDING, wake_flush
from sms.models import Message, Recipient
from sms.services import message_send
from tests.workers import broker_down, wait_until

TZ = "+255712345678"
TASK = "sms.tasks.dispatch_queued"


def phones(count: int, start: int = 0) -> list[str]:
    # Ending in 5: clear of the simulator's special endings 0001-0004.
    return [f"+25571{(start + i) * 10 + 5:07d}" for i in range(count)]


def send(account: Any, recipients: list[str], **extra: Any) -> Message:
    """A send, its wake made by the time it returns (the waker thread shares it otherwise)."""
    message = message_send(account=account, text="Habari", recipients=recipients, **extra).message
    assert wake_flush()
    return message


def queue_headers() -> list[dict[str, Any]]:
    """The headers of the messages waiting on the broker's dispatch queue (a Redis list)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    bodies: list[bytes] = client.lrange("dispatch", 0, -1)  # type: ignore[assignment]
    return [json.loads(body)["headers"] for body in bodies]


def published(task: str = TASK) -> int:
    """Messages for ``task`` waiting on the broker's dispatch queue."""
    return sum(1 for headers in queue_headers() if headers["task"] == task)


@pytest.fixture
def broker(celery_worker_factory: Any) -> Any:
    """Tasks go to the real broker (not run in place), from empty queues; ``start()`` runs a
    real worker on them."""
    return celery_worker_factory


def statuses(message: Message) -> dict[str, int]:
    rows = Recipient.objects.filter(message=message).values_list("status", flat=True)
    return {status: list(rows).count(status) for status in set(rows)}


# --- one task per wake window ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sends_inside_one_wake_window_publish_one_task_not_one_each(alice, broker):
    messages = [send(alice, [phone]) for phone in phones(20)]
    assert published() == 1
    assert published("sms.tasks.dispatch_message") == 0
    assert cache.get(PENDING)

    worker = broker()
    wait_until(
        lambda: all(statuses(m) == {"delivered": 1} for m in messages), timeout=60, interval=0.2
    )
    # The one task claimed them all and cleared the flag before its last look.
    wait_until(lambda: f"Task {TASK}[" in worker.output() and "succeeded" in worker.output())
    assert worker.output().count(f"Task {TASK}[") == 2  # received + succeeded
    assert cache.get(PENDING) is None
    # The next send wakes a dispatcher again.
    late = send(alice, phones(1, start=100))
    wait_until(lambda: statuses(late) == {"delivered": 1}, timeout=30, interval=0.2)


# --- cross-message claims and fairness ---------------------------------------------------------


@pytest.mark.django_db
def test_one_claim_batch_takes_recipients_of_several_messages(alice, locmem):
    first = send(alice, phones(3))
    second = send(alice, phones(2, start=10))
    third = send(alice, phones(1, start=20))
    rows = dispatch.claim_queued(10)
    assert {row[1] for row in rows} == {first.id, second.id, third.id}
    assert len(rows) == 6 and [row[0] for row in rows] == sorted(row[0] for row in rows)
    assert set(Recipient.objects.values_list("status", flat=True)) == {"submitting"}
    assert set(Recipient.objects.values_list("attempts", flat=True)) == {1}
    # Claimed: not claimed again.
    assert dispatch.claim_queued(10) == []


@pytest.mark.django_db
def test_a_message_queued_behind_a_bulk_one_goes_in_the_next_batch(alice, locmem, settings):
    settings.MIFUMO_DISPATCH_NEWEST_PERCENT = 10
    bulk = send(alice, phones(100))
    otp = send(alice, [TZ])
    rows = dispatch.claim_queued(20)
    assert len(rows) == 20
    taken = {row[1] for row in rows}
    assert taken == {bulk.id, otp.id}
    oldest = list(
        Recipient.objects.filter(message=bulk).order_by("id").values_list("id", flat=True)[:18]
    )
    assert set(oldest) <= {row[0] for row in rows}


@pytest.mark.django_db
def test_queued_dispatch_delivers_every_message_in_shared_batches(alice, locmem, settings):
    settings.MIFUMO_DISPATCH_BATCH = 4
    send(alice, phones(5))
    message_send(account=alice, text="Habari {{phone}}", recipients=phones(3, start=50))
    report = dispatch.queued_dispatch()
    assert report.submitted == 8 and report.retry_at is None
    assert set(Recipient.objects.values_list("status", flat=True)) == {"sent"}
    texts = {sms.to: sms.text for sms in locmem.outbox}
    assert len(locmem.outbox) == len(texts) == 8
    assert all(texts[p] == "Habari" for p in phones(5))
    assert all(texts[p] == f"Habari {p}" for p in phones(3, start=50))


# --- no lost wake-up ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_send_after_the_dispatchers_last_look_wakes_a_new_task(alice, broker):
    # A send publishes the task; the task runs (here, its pieces in its order).
    send(alice, [TZ])
    assert published() == 1
    rows = dispatch.claim_queued(500)
    assert len(rows) == 1
    # Nothing more: the flag is cleared BEFORE the claim that ends the run ...
    assert dispatch.claim_queued(500) == []
    dispatch.wake_clear()
    # ... so a send committed between the clear and the final claim is seen by that claim,
    between = send(alice, phones(1, start=1))
    last = dispatch.claim_queued(500)
    assert [row[1] for row in last] == [between.id]
    # (its wake published a task too, harmless: it will find nothing)
    assert published() == 2
    # and a send committed after the final claim found nothing sets the flag again and
    # publishes a task of its own.
    dispatch.wake_clear()
    assert dispatch.claim_queued(500) == []
    after = send(alice, phones(1, start=2))
    assert published() == 3
    assert Recipient.objects.get(message=after).status == "queued"


@pytest.mark.django_db(transaction=True)
def test_clearing_after_the_final_claim_would_lose_the_send(alice, broker):
    """The order the dispatcher avoids: claim, then clear. A send in between finds the flag
    still set, publishes nothing, and nobody comes for it until the sweep."""
    send(alice, [TZ])
    dispatch.claim_queued(500)
    assert dispatch.claim_queued(500) == []
    lost = send(alice, phones(1, start=1))
    dispatch.wake_clear()
    assert published() == 1
    assert Recipient.objects.get(message=lost).status == "queued"


@pytest.mark.django_db(transaction=True)
def test_a_send_during_a_round_every_route_turned_away_is_taken_by_the_last_look(
    alice, locmem, broker, monkeypatch
):
    """The round's carrier refuses for now; a send commits meanwhile and, finding the flag
    set, publishes nothing. The run ends only after a last look made after its clear."""
    locmem.reject = {TZ: ("THROTTLED", False)}
    send(alice, [TZ])
    assert published() == 1
    during: list[Message] = []
    post = locmem.post_to_carrier

    def a_send_commits_meanwhile(carrier: Any, payload: Any, batch: Any) -> Any:
        if not during:
            during.append(send(alice, phones(1, start=1)))
        return post(carrier, payload, batch)

    monkeypatch.setattr(locmem, "post_to_carrier", a_send_commits_meanwhile)
    report = dispatch.queued_dispatch()
    assert published() == 1  # the send during the round published nothing
    assert (report.requeued, report.submitted) == (1, 1)
    assert statuses(during[0]) == {"sent": 1}
    assert Recipient.objects.exclude(message=during[0]).get().status == "queued"  # backoff
    assert not dispatch.wake_pending()


@pytest.mark.django_db
def test_the_dispatcher_clears_the_flag_only_before_its_final_claim(
    alice, locmem, monkeypatch, settings
):
    settings.MIFUMO_DISPATCH_BATCH = 2
    send(alice, phones(5))
    cache.add(PENDING, 1, timeout=60)
    seen: list[tuple[bool, int]] = []
    real = dispatch.claims.claim_queued

    def watched(limit: int) -> list[tuple[int, str, str, str, Any]]:
        pending = dispatch.wake_pending()
        rows = real(limit)
        seen.append((pending, len(rows)))
        return rows

    monkeypatch.setattr("sms.dispatch.claims.claim_queued", watched)
    assert dispatch.queued_dispatch().submitted == 5
    # Claims while work was found ran with the flag set; the empty one, then the flag was
    # cleared and a last claim made.
    assert seen[:-2] == [(True, 2), (True, 2), (True, 1)]
    assert seen[-2:] == [(True, 0), (False, 0)]
    assert not dispatch.wake_pending()


@pytest.mark.django_db(transaction=True)
def test_a_send_while_the_dispatcher_runs_is_taken_by_that_run(alice, locmem, broker, monkeypatch):
    """A send committed while the flag is set publishes nothing; the running dispatcher's next
    claim takes it."""
    send(alice, [TZ])
    assert published() == 1
    extra: list[Message] = []
    real = dispatch.claims.claim_queued

    def claim_then_send(limit: int) -> list[tuple[int, str, str, str, Any]]:
        rows = real(limit)
        if not extra:
            extra.append(send(alice, phones(1, start=7)))
        return rows

    monkeypatch.setattr("sms.dispatch.claims.claim_queued", claim_then_send)
    report = dispatch.queued_dispatch()
    assert report.submitted == 2
    assert published() == 1
    assert Recipient.objects.get(message=extra[0]).status == "sent"


# --- backoff of recipients in temporary trouble ------------------------------------------------


@pytest.mark.django_db
def test_requeued_recipients_wait_out_their_backoff(alice, locmem):
    message = send(alice, [TZ])
    other = send(alice, phones(1, start=3))
    locmem.fail_next = CarrierError("connection refused", permanent=False)
    before = timezone.now()
    report = dispatch.queued_dispatch()
    assert report.requeued == 2 and report.submitted == 0
    row = Recipient.objects.get(message=message)
    assert row.status == "queued" and row.attempts == 1
    assert row.not_before is not None
    assert timedelta(seconds=4.9) < row.not_before - before < timedelta(seconds=6)
    assert report.retry_at == row.not_before
    # Not claimed again before then, however often the dispatcher runs.
    assert dispatch.claim_queued(500) == []
    assert dispatch.queued_dispatch().submitted == 0
    # The sweep does not count them as stuck either.
    assert dispatch.stuck_messages(now=timezone.now() + timedelta(seconds=3)) == []
    # Due: claimed and sent.
    Recipient.objects.update(not_before=timezone.now() - timedelta(seconds=1))
    assert dispatch.queued_dispatch().submitted == 2
    assert statuses(message) == {"sent": 1} and statuses(other) == {"sent": 1}


@pytest.mark.django_db
def test_the_backoff_doubles_with_each_attempt_up_to_ten_minutes(alice, locmem):
    assert [dispatch.retry_delay(n) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert dispatch.retry_delay(20) == 600.0
    send(alice, [TZ])
    for attempt, delay in ((1, 5), (2, 10)):
        locmem.fail_next = CarrierError("connection refused", permanent=False)
        start = timezone.now()
        dispatch.queued_dispatch()
        row = Recipient.objects.get()
        assert row.attempts == attempt and row.not_before is not None
        assert (
            timedelta(seconds=delay - 0.1) < row.not_before - start < timedelta(seconds=delay + 1)
        )
        Recipient.objects.update(not_before=timezone.now())


@pytest.mark.django_db
def test_a_round_wholly_in_trouble_ends_the_run_and_lets_sends_wake_again(alice, locmem, settings):
    settings.MIFUMO_DISPATCH_BATCH = 2
    send(alice, phones(6))
    cache.add(PENDING, 1, timeout=60)
    locmem.reject = dict.fromkeys(phones(6), ("THROTTLED", False))
    report = dispatch.queued_dispatch()
    # One batch turned away, then the flag cleared and one last look, turned away too; the
    # rest is not offered to the carrier in trouble at once.
    assert report.requeued == 4 and report.submitted == 0
    assert Recipient.objects.filter(status="queued", not_before__isnull=True).count() == 2
    assert not dispatch.wake_pending()


@pytest.mark.django_db
def test_a_round_in_trouble_then_a_last_look_the_carrier_takes_goes_on(alice, locmem, settings):
    settings.MIFUMO_DISPATCH_BATCH = 2
    send(alice, phones(6))
    cache.add(PENDING, 1, timeout=60)
    locmem.fail_next = CarrierError("connection refused", permanent=False)
    report = dispatch.queued_dispatch()
    # The first batch turned away; the last look found the carrier back, and full batches
    # go on until one is not.
    assert report.requeued == 2 and report.submitted == 4
    assert Recipient.objects.filter(status="queued", not_before__isnull=False).count() == 2
    assert not dispatch.wake_pending()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_requeued_recipients_are_dispatched_by_a_delayed_task_after_their_backoff(
    alice, locmem, broker
):
    worker = broker()  # a real worker (carrier: the simulator)
    message = send(alice, [TZ])
    # Turned away by every carrier here, in the test process (and given a backoff long
    # enough that the checks below run well inside it, however loaded the machine).
    locmem.fail_next = CarrierError("connection refused", permanent=False)
    report = dispatch.queued_dispatch()
    assert report.requeued == 1 and report.retry_at is not None
    due = timezone.now() + timedelta(seconds=8)
    Recipient.objects.filter(message=message).update(not_before=due)
    # What the task does next: one delayed run for the first one due.
    assert dispatch.dispatch_later(due)
    # An immediate run finds nothing due.
    assert dispatch.dispatch_wake(force=True)
    wait_until(lambda: "succeeded" in worker.output(), timeout=30, interval=0.1)
    row = Recipient.objects.get(message=message)
    assert row.status == "queued" and row.attempts == 1
    assert timezone.now() < due
    # The delayed run takes it once it is due.
    wait_until(lambda: statuses(message) == {"delivered": 1}, timeout=40, interval=0.2)
    row = Recipient.objects.get(message=message)
    assert row.attempts == 2 and row.sent_at is not None and row.sent_at >= due


@pytest.mark.django_db
def test_the_tasks_queue_a_delayed_run_for_requeued_recipients(alice, locmem, broker):
    send(alice, [TZ])
    locmem.fail_next = CarrierError("connection refused", permanent=False)
    tasks.dispatch_queued.apply()
    assert [(h["task"], h["eta"] is not None) for h in queue_headers()] == [(TASK, True)]
    # Another run asking for the same second publishes nothing more.
    due = Recipient.objects.get().not_before
    assert due is not None and not dispatch.dispatch_later(due)
    assert len(queue_headers()) == 1


# --- wake failures and the sweep ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_broker_down_at_send_leaves_the_flag_clear_for_the_next_send(alice, broker, caplog):
    with broker_down():
        message = send(alice, [TZ])
    assert "the sweep will dispatch" in caplog.text
    assert not dispatch.wake_pending()
    assert published() == 0
    assert statuses(message) == {"queued": 1}
    send(alice, phones(1, start=1))
    assert published() == 1


@pytest.mark.django_db(transaction=True)
def test_cache_down_at_send_is_logged_and_the_send_stands(alice, broker, settings, caplog):
    working = settings.CACHES
    settings.CACHES = {
        "default": {
            **working["default"],
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }
    try:
        message = send(alice, [TZ])
    finally:
        settings.CACHES = working
    assert "the sweep will wake the dispatcher" in caplog.text
    assert published() == 0
    assert statuses(message) == {"queued": 1}


def _age_queued(seconds: int = 61) -> None:
    Recipient.objects.filter(status="queued").update(
        updated_at=timezone.now() - timedelta(seconds=seconds)
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_sweep_dispatches_work_whose_flag_was_set_without_a_task(alice, broker):
    cache.add(PENDING, 1, timeout=300)  # a task that was lost with its worker
    message = send(alice, [TZ])
    assert published() == 0
    _age_queued()
    assert tasks.sweep_stuck.apply().get(disable_sync_subtasks=False) == 1
    assert published() == 1
    broker()
    wait_until(lambda: statuses(message) == {"delivered": 1}, timeout=30, interval=0.2)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_sweep_dispatches_work_sent_while_the_broker_was_down(alice, broker):
    with broker_down():
        message = send(alice, [TZ])
    assert published() == 0
    _age_queued()
    tasks.sweep_stuck.apply()
    broker()
    wait_until(lambda: statuses(message) == {"delivered": 1}, timeout=30, interval=0.2)


@pytest.mark.django_db(transaction=True)
def test_the_sweep_leaves_nothing_to_do_alone(alice, broker):
    send(alice, [TZ])
    dispatch.wake_clear()
    while published():
        redis.Redis.from_url(settings.REDIS_URL).lpop("dispatch")
    assert tasks.sweep_stuck.apply().get(disable_sync_subtasks=False) == 0
    assert published() == 0


# --- scheduled sends ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_scheduled_release_wakes_the_dispatcher_once_for_all_due_messages(alice, broker):
    soon = (timezone.now() + timedelta(minutes=2)).isoformat()
    for phone in phones(3):
        send(alice, [phone], schedule_time=soon)
    assert published() == 0
    Message.objects.update(schedule_time=timezone.now() - timedelta(seconds=1))
    assert tasks.dispatch_due.apply().get(disable_sync_subtasks=False) == 3
    assert published() == 1
    assert published("sms.tasks.dispatch_message") == 0
    assert Recipient.objects.filter(status="queued").count() == 3


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_released_scheduled_message_is_delivered_through_the_wake(alice, broker):
    soon = (timezone.now() + timedelta(minutes=2)).isoformat()
    message = send(alice, [TZ], schedule_time=soon)
    Message.objects.update(schedule_time=timezone.now() - timedelta(seconds=1))
    tasks.dispatch_due.apply()
    broker()
    wait_until(lambda: statuses(message) == {"delivered": 1}, timeout=30, interval=0.2)


# --- tasks of earlier versions -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_dispatch_message_task_queued_by_an_earlier_version_still_runs(alice, broker):
    cache.add(PENDING, 1, timeout=300)  # no wake task for this send
    message = send(alice, [TZ])
    tasks.dispatch_message.delay(message.id)
    broker()
    wait_until(lambda: statuses(message) == {"delivered": 1}, timeout=30, interval=0.2)
