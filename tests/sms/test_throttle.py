"""Per-carrier throughput caps: a counter per second in the shared cache."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.core.cache import cache
from django.db.models import Sum

from sms import dispatch
from sms.carriers.locmem import LocmemCarrier
from sms.dispatch import failover
from sms.models import Recipient, SubmitAttempt
from sms.services import message_send
from sms.throttle import Throttle, carrier_rate
from tests.helpers import assert_envelope
from tests.workers import wait_until


class Clock:
    """Wall-clock time that only moves when someone sleeps."""

    def __init__(self, start: float = 1_000.25) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def throttle(clock: Clock, rate: int, **kwargs: Any) -> Throttle:
    return Throttle("t", rate, clock=clock.time, sleep=clock.sleep, **kwargs)


def test_tokens_are_granted_up_to_the_rate_then_the_next_second_is_awaited(clock: Clock) -> None:
    limiter = throttle(clock, 10)
    assert [limiter.acquire(4), limiter.acquire(4)] == [4, 4]
    assert limiter.acquire(4) == 2  # only what still fits in this second
    assert not clock.slept
    assert limiter.acquire(4) == 4
    assert int(clock.now) == 1_001 and len(clock.slept) == 1


def test_no_more_than_the_rate_is_taken_at_once(clock: Clock) -> None:
    assert throttle(clock, 5).acquire(50) == 5


def test_two_limiters_on_one_cache_share_one_budget(clock: Clock) -> None:
    first, second = throttle(clock, 6), throttle(clock, 6)
    assert first.acquire(4) == 4
    assert second.acquire(4) == 2


def test_admit_counts_parts_and_lets_a_message_dearer_than_the_rate_through(clock: Clock) -> None:
    limiter = throttle(clock, 5)
    assert limiter.admit([2, 2, 2]) == 2  # 4 parts of 5; the third message waits
    assert limiter.admit([9]) == 1  # capped at the rate, in the next second
    assert int(clock.now) == 1_001


class BrokenCache:
    def add(self, *args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("redis is down")

    def incr(self, *args: Any, **kwargs: Any) -> int:
        raise ConnectionError("redis is down")


def test_the_cap_fails_open_when_the_cache_is_down(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = throttle(clock, 2, cache=BrokenCache())
    assert limiter.acquire(2) == 2
    assert limiter.acquire(2) == 2
    assert not clock.slept
    assert "not enforced" in caplog.text


def test_the_rate_comes_from_the_carrier_options(settings: Any) -> None:
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "capped": {"BACKEND": "sms.carriers.locmem.LocmemCarrier", "rate": "25"},
    }
    assert carrier_rate("capped") == 25
    assert carrier_rate("locmem") == 0
    assert carrier_rate("unknown") == 0


@pytest.fixture
def capped_locmem(
    settings: Any, locmem: type[LocmemCarrier], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Clock:
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "locmem": {"BACKEND": "sms.carriers.locmem.LocmemCarrier", "RATE": 3},
    }

    def fake_throttle(carrier: str) -> Throttle | None:
        rate = carrier_rate(carrier)
        return Throttle(carrier, rate, clock=clock.time, sleep=clock.sleep) if rate else None

    monkeypatch.setattr(failover, "throttle_for", fake_throttle)
    cache.clear()
    return clock


@pytest.mark.django_db
def test_dispatch_sends_a_capped_carrier_no_more_than_its_rate_each_second(
    alice: Any, capped_locmem: Clock
) -> None:
    phones = [f"+2557120000{n:02d}" for n in range(8)]
    message = message_send(account=alice, text="Habari", recipients=phones).message
    assert dispatch.message_dispatch(message_id=message.id).submitted == 8
    attempts = list(SubmitAttempt.objects.order_by("id").values_list("recipient_count", flat=True))
    assert attempts == [3, 3, 2]
    assert len(capped_locmem.slept) == 2
    assert set(Recipient.objects.values_list("status", flat=True)) == {"sent"}


# -- across processes ----------------------------------------------------------------------------

RATE = 40


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_together_stay_under_the_cap(
    api: Any, alice: Any, celery_worker_factory: Any
) -> None:
    env = {
        "MIFUMO_SIMULATOR_RATE": str(RATE),
        "MIFUMO_SIMULATOR_DELAY": "0",
        "MIFUMO_DISPATCH_BATCH": "50",
    }
    celery_worker_factory(name="capped1", queues="dispatch", concurrency=1, **env)
    celery_worker_factory(name="capped2", queues="dispatch", concurrency=1, **env)
    messages = []
    for network in (2, 3):
        # Numbers ending in 67 are plainly delivered by the simulator (no magic suffix).
        phones = [f"+25571{network}{n:04d}67" for n in range(120)]
        body = assert_envelope(api.post("sms/send/", {"message": "hi", "recipients": phones}), 200)
        messages.append(body["data"]["message_id"])

    def everyone_sent() -> bool:
        total = SubmitAttempt.objects.aggregate(sent=Sum("accepted"))["sent"] or 0
        return bool(total == 240)

    wait_until(everyone_sent, timeout=60)
    attempts = list(SubmitAttempt.objects.values_list("message_id", "created_at", "accepted"))
    per_second: Counter[int] = Counter()
    for _, created_at, accepted in attempts:
        per_second[int(created_at.timestamp())] += accepted
    assert max(per_second.values()) <= RATE, sorted(per_second.items())
    seconds = max(per_second) - min(per_second) + 1
    assert 240 / seconds <= RATE
    # Both processes were sending at once: the two messages' submissions overlap in time.
    spans = {
        message_id: (
            min(c for m, c, _ in attempts if m == message_id),
            max(c for m, c, _ in attempts if m == message_id),
        )
        for message_id in messages
    }
    (start_a, end_a), (start_b, end_b) = spans.values()
    assert start_a < end_b and start_b < end_a, spans
