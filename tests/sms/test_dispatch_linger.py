"""The dispatcher lingers after a part batch: sends committed meanwhile share its next claim
(one claim, carrier call and recording for them all) and publish no task of their own; a
full batch claims again at once; past its time (half the flag's TTL) a run clears the flag
and makes its last look, so that steady traffic never keeps it running; a task run in place
never waits."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache

from mifumo.celery import app as celery_app
from sms import dispatch, tasks
from sms.dispatch.wake import PENDING
from sms.models import Recipient
from tests.sms.test_dispatch_wake import TZ, phones, published, send, statuses
from tests.workers import wait_until


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int]]:
    """Each claim of the dispatcher, as (when, how many recipients it took)."""
    seen: list[tuple[float, int]] = []
    real = dispatch.claims.claim_queued

    def watched(limit: int) -> list[tuple[int, str, str, str, Any]]:
        rows = real(limit)
        seen.append((time.monotonic(), len(rows)))
        return rows

    monkeypatch.setattr("sms.dispatch.claims.claim_queued", watched)
    return seen


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sends_committed_while_it_lingers_share_its_next_claim_and_publish_nothing(
    alice, locmem, celery_worker_factory, claims
):
    # Tasks go to the real broker (no worker takes them): what is published can be counted.
    send(alice, [TZ])
    assert published() == 1  # the first send's wake: the task this run stands for
    reports: list[dispatch.DispatchReport] = []
    run = threading.Thread(target=lambda: reports.append(dispatch.queued_dispatch(linger=3)))
    run.start()
    try:
        wait_until(lambda: len(locmem.outbox) == 1, timeout=10, interval=0.01)
        later = [send(alice, phones(1, start=n)) for n in range(3)]
    finally:
        run.join(30)
    assert not run.is_alive()
    # One claim for the three sends made during the wait, then the empty claim, the flag
    # cleared, and the last look.
    assert [taken for _, taken in claims] == [1, 3, 0, 0]
    assert reports[0].submitted == 4
    assert published() == 1
    assert {r.status for r in Recipient.objects.filter(message__in=later)} == {"sent"}
    assert not dispatch.wake_pending()


@pytest.mark.django_db
def test_a_full_batch_claims_again_at_once(alice, locmem, settings, claims):
    settings.MIFUMO_DISPATCH_BATCH = 2
    settings.MIFUMO_DISPATCH_WAKE_SECONDS = 600  # lingering allowed for five minutes
    send(alice, phones(4))
    started = time.monotonic()
    assert dispatch.queued_dispatch(linger=5).submitted == 4
    # Two full batches: no wait after either; the run ended at the empty claims.
    assert time.monotonic() - started < 5
    assert [taken for _, taken in claims] == [2, 2, 0, 0]


@pytest.mark.django_db
def test_a_part_batch_is_followed_by_the_wait(alice, locmem, claims):
    send(alice, [TZ])
    started = time.monotonic()
    assert dispatch.queued_dispatch(linger=0.5).submitted == 1
    assert [taken for _, taken in claims] == [1, 0, 0]
    assert claims[1][0] - claims[0][0] >= 0.5
    assert time.monotonic() - started >= 0.5


@pytest.mark.django_db
def test_past_its_time_a_run_makes_its_last_look_and_ends(alice, locmem, monkeypatch):
    """Under steady traffic a lingering dispatcher finds work at every claim and would hold
    its worker process for as long as the traffic lasts. Past ``run_for`` it clears the flag
    and ends after the next claim that is not a full batch, leaving later sends to the task
    their wake publishes."""
    cache.add(PENDING, 1, timeout=60)  # set by the send that woke this run
    send(alice, [TZ])
    real = dispatch.claims.claim_queued
    seen: list[tuple[bool, int]] = []

    def claim_then_send(limit: int) -> list[tuple[int, str, str, str, Any]]:
        # Steady traffic: every claim is followed by one more send.
        pending = dispatch.wake_pending()
        rows = real(limit)
        seen.append((pending, len(rows)))
        if len(seen) < 40:
            send(alice, phones(1, start=len(seen)))
        return rows

    monkeypatch.setattr("sms.dispatch.claims.claim_queued", claim_then_send)
    started = time.monotonic()
    report = dispatch.queued_dispatch(linger=0.2, run_for=1)
    elapsed = time.monotonic() - started
    # Lingering every round, 40 rounds would take 8 s; it ended after a second.
    assert 1 <= elapsed < 4
    assert 4 <= len(seen) < 40
    # Every claim found work; the last one was made with the flag cleared, and ended the run.
    assert all(taken == 1 for _, taken in seen)
    assert [pending for pending, _ in seen] == [True] * (len(seen) - 1) + [False]
    assert report.submitted == len(seen)
    # The send made after the last look is left for the task its wake publishes.
    assert Recipient.objects.filter(status="queued").count() == 1
    assert not dispatch.wake_pending()


@pytest.mark.django_db
def test_past_its_time_a_backlog_is_still_worked_through(alice, locmem, settings, claims):
    settings.MIFUMO_DISPATCH_BATCH = 2
    send(alice, phones(5))
    # Past its time from the start, but full batches mean more is waiting: the run goes on
    # until a part batch, then clears the flag and makes its last look.
    assert dispatch.queued_dispatch(linger=5, run_for=0).submitted == 5
    assert [taken for _, taken in claims] == [2, 2, 1, 0]
    assert not dispatch.wake_pending()


@pytest.mark.django_db
def test_a_wait_is_cut_to_the_time_left(alice, locmem):
    send(alice, [TZ])
    started = time.monotonic()
    report = dispatch.queued_dispatch(linger=5, run_for=0.5)
    elapsed = time.monotonic() - started
    # It waited out the half second left, not five, then found nothing and ended as usual.
    assert 0.5 <= elapsed < 5
    assert report.submitted == 1
    assert not dispatch.wake_pending()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_under_steady_sends_the_runs_hand_over_and_receipts_keep_flowing(
    alice, celery_worker_factory
):
    """A real worker (two processes) under a steady stream of sends for four seconds, each
    run's time one second: the dispatcher's runs end about each second and the next send
    wakes another, and receipts are taken in meanwhile, not left waiting for the stream to
    stop."""
    worker = celery_worker_factory(MIFUMO_DISPATCH_WAKE_SECONDS="2", MIFUMO_SIMULATOR_DELAY="0")
    first = send(alice, [TZ])
    messages = [first]
    first_delivered_at = None
    stop = time.monotonic() + 4
    while time.monotonic() < stop:
        messages.append(send(alice, phones(1, start=len(messages))))
        if first_delivered_at is None and statuses(first) == {"delivered": 1}:
            first_delivered_at = time.monotonic()
        time.sleep(0.02)
    assert first_delivered_at is not None and first_delivered_at < stop
    wait_until(
        lambda: all(statuses(m) == {"delivered": 1} for m in messages), timeout=60, interval=0.2
    )
    succeeded = r"dispatch_queued\[[^\]]+\] succeeded in ([\d.]+)s"
    runs = [float(seconds) for seconds in re.findall(succeeded, worker.output())]
    # Several runs, none much past its second (a run ends after the batch in hand).
    assert len(runs) >= 3
    assert max(runs) < 2.5


@pytest.mark.django_db
def test_the_task_waits_the_setting_in_a_worker_and_never_when_run_in_place(
    alice, locmem, settings
):
    settings.MIFUMO_DISPATCH_LINGER_MS = 600
    # Run in place (tasks eager, as a send's own wake runs it then): no wait.
    message = send(alice, [TZ])
    started = time.monotonic()
    assert tasks.dispatch_queued() == 1
    assert time.monotonic() - started < 0.6
    assert Recipient.objects.get(message=message).status == "sent"
    # In a worker: the part batch is followed by the setting's wait.
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=False)
    try:
        late = send(alice, phones(1, start=2))
        started = time.monotonic()
        assert tasks.dispatch_queued() == 1
        assert time.monotonic() - started >= 0.6
    finally:
        celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=True)
    assert Recipient.objects.get(message=late).status == "sent"
