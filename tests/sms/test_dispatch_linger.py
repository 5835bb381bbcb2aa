"""The dispatcher lingers after a part batch: sends committed meanwhile share its next claim
(one claim, carrier call and recording for them all) and publish no task of their own; a
full batch claims again at once; lingering stops after half the flag's TTL; a task run in
place never waits."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from mifumo.celery import app as celery_app
from sms import dispatch, tasks
from sms.models import Recipient
from tests.sms.test_dispatch_wake import TZ, phones, published, send
from tests.workers import wait_until


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int]]:
    """Each claim of the dispatcher, as (when, how many recipients it took)."""
    seen: list[tuple[float, int]] = []
    real = dispatch.claims.claim_queued

    def watched(limit: int) -> list[tuple[int, str, str, str]]:
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


@pytest.mark.slow
@pytest.mark.django_db
def test_lingering_stops_after_half_the_flags_ttl(alice, locmem, settings, monkeypatch):
    """Under steady traffic a lingering dispatcher would run on past the flag's TTL, and a
    send finding the flag expired would start a second one beside it. It lingers only in
    the first half of the TTL, then ends at its first empty claim."""
    settings.MIFUMO_DISPATCH_WAKE_SECONDS = 2
    send(alice, [TZ])
    real = dispatch.claims.claim_queued
    times: list[float] = []

    def claim_then_send(limit: int) -> list[tuple[int, str, str, str]]:
        # Steady traffic: every claim that finds work is followed by one more send.
        rows = real(limit)
        times.append(time.monotonic())
        if rows and len(times) < 20:
            send(alice, phones(1, start=len(times)))
        return rows

    monkeypatch.setattr("sms.dispatch.claims.claim_queued", claim_then_send)
    started = time.monotonic()
    report = dispatch.queued_dispatch(linger=0.3)
    elapsed = time.monotonic() - started
    assert report.submitted == 20
    # Lingering each round, 19 waits of 0.3 s would take 5.7 s; it waited only in the
    # first second.
    waits = [b - a for a, b in itertools.pairwise(times) if b - a >= 0.3]
    assert 1 <= len(waits) <= 6
    assert elapsed < 4.5


@pytest.mark.django_db
def test_the_ttl_bound_also_covers_a_linger_that_would_end_past_it(alice, locmem, settings):
    settings.MIFUMO_DISPATCH_WAKE_SECONDS = 2
    send(alice, [TZ])
    started = time.monotonic()
    # A wait of 1.5 s would end past the first second: not taken.
    assert dispatch.queued_dispatch(linger=1.5).submitted == 1
    assert time.monotonic() - started < 1.5


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
