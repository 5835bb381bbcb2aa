"""A send's wake carried by the next request's rate-limit round trip: the flag set with the
request's own marks and the task published from there, no round trip of its own and nothing
made twice; the flag already set publishes nothing; a round trip that fails leaves the wake to
the waker thread; one wake in flight at a time, which ``wake_flush`` waits for.

Against the test Redis and its broker queues (no worker runs the tasks published here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings

from mifumo.celery import app as celery_app
from sms.dispatch import wake
from sms.dispatch.wake import PENDING
from tests.helpers import assert_envelope
from tests.ops.stack import free_port
from tests.sms.test_dispatch_wake import published
from tests.workers import wait_until

PHONE = "+255712345675"


class Wakes:
    """The waker thread's ``dispatch_wake`` calls, counted (the real one runs)."""

    def __init__(self) -> None:
        self.real = wake.dispatch_wake
        self.threads: list[str] = []

    def __call__(self, *, force: bool = False) -> bool:
        self.threads.append(threading.current_thread().name)
        return self.real(force=force)


@pytest.fixture
def wakes(
    settings: Any, monkeypatch: pytest.MonkeyPatch, celery_worker_factory: Any
) -> Iterator[Wakes]:
    """Tasks published to the real broker from empty queues, a window long enough that the
    thread leaves the wake to the next request, the flag clear, the thread's wakes counted;
    at the end, the flush ends the thread's window."""
    settings.MIFUMO_DISPATCH_WAKE_COALESCE_MS = 30_000
    cache.delete(PENDING)
    counted = Wakes()
    monkeypatch.setattr(wake, "dispatch_wake", counted)
    yield counted
    assert wake.wake_flush()


def owed() -> bool:
    waker = wake._waker
    return waker is not None and waker.owed.is_set()


def send(api: Any) -> None:
    payload = {"message": "Habari", "recipients": [PHONE]}
    assert_envelope(api.post("sms/send/", payload), 200)


@pytest.mark.django_db(transaction=True)
def test_the_next_request_carries_the_wake_and_publishes_the_task(api: Any, wakes: Wakes) -> None:
    send(api)
    # The send's own round trip came before its commit: the wake is owed, not made.
    assert owed() and cache.get(PENDING) is None and published() == 0
    assert_envelope(api.get("sms/balance/"), 200)
    assert not owed()
    assert cache.get(PENDING) == 1  # what ``cache.add`` would have stored
    assert published() == 1
    # Made once: the thread has nothing left to do, a later request nothing to carry.
    assert wake.wake_flush() and wakes.threads == []
    assert_envelope(api.get("sms/balance/"), 200)
    assert published() == 1


@pytest.mark.django_db(transaction=True)
def test_a_carried_wake_that_finds_the_flag_set_publishes_nothing(api: Any, wakes: Wakes) -> None:
    cache.add(PENDING, 1, timeout=60)  # a dispatcher is on its way
    send(api)
    assert owed()
    assert_envelope(api.get("sms/balance/"), 200)
    assert not owed() and published() == 0
    assert wakes.threads == []


@pytest.mark.django_db(transaction=True)
def test_a_failed_round_trip_leaves_the_wake_to_the_thread(
    api: Any, wakes: Wakes, settings: Any
) -> None:
    settings.MIFUMO_DISPATCH_WAKE_COALESCE_MS = 1_500
    send(api)
    dead = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    with override_settings(CACHES={"default": dead}):
        # Rate limits fail open; the wake they carried is owed again.
        response = api.get("sms/balance/")
        assert_envelope(response, 200)
        assert "X-RateLimit-Limit" not in response
        assert owed() and published() == 0
    # The thread makes it at the end of its window.
    wait_until(lambda: published() == 1, timeout=10, interval=0.02)
    assert cache.get(PENDING) == 1 and not owed()
    assert wakes.threads == ["dispatch-wake"]


@pytest.mark.django_db(transaction=True)
def test_one_wake_in_flight_at_a_time_and_wake_flush_waits_for_it(alice: Any, wakes: Wakes) -> None:
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=False)
    wake.dispatch_wake_soon()
    rider = wake._Rider()
    ride = rider.take()
    assert ride is not None and ride.key == PENDING and not owed()
    # A second send's note while the first wake is in flight: no second taker meanwhile.
    wake.dispatch_wake_soon()
    assert rider.take() is None
    assert not wake.wake_flush(timeout=0.2)
    ride.done(True)  # told the flag was set anew: it publishes
    assert published() == 1 and cache.get(PENDING) is None
    assert wake.wake_flush()  # and it makes the second note's wake itself
    assert wakes.threads == ["MainThread"]
    assert not owed() and cache.get(PENDING) == 1
    assert published() == 2


def test_no_wake_owed_nothing_rides() -> None:
    waker = wake._waker
    assert waker is None or not waker.owed.is_set()
    assert wake._Rider().take() is None
