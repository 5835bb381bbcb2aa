"""The simulator hands its receipts over after the delay, from one thread per process."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from sms.carriers.base import DeliveryReceipt, DeliveryStatus, OutboundSms
from sms.carriers.simulator import Clock, SimulatorCarrier


@pytest.fixture
def clock() -> Iterator[Clock]:
    running = Clock("test-clock")
    yield running
    running.stop()


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_calls_run_when_due_in_the_order_they_fall_due(clock: Clock) -> None:
    ran: list[tuple[str, float]] = []
    done = threading.Event()
    started = time.monotonic()

    def record(name: str) -> Callable[[], None]:
        return lambda: ran.append((name, time.monotonic() - started))

    for name, delay in (("third", 0.3), ("first", 0.1), ("second", 0.2)):
        clock.call_later(delay, record(name))
    clock.call_later(0.35, done.set)
    assert done.wait(5)
    assert [name for name, _ in ran] == ["first", "second", "third"]
    for (_name, at), delay in zip(ran, (0.1, 0.2, 0.3), strict=True):
        assert delay <= at < delay + 1


def test_many_calls_share_one_thread(clock: Clock) -> None:
    seen: set[int] = set()
    done = threading.Event()
    for _ in range(50):
        clock.call_later(0.01, lambda: seen.add(threading.get_ident()))
    clock.call_later(0.05, done.set)
    assert done.wait(5)
    assert len(seen) == 1 and len(threads_named("test-clock")) == 1


def test_a_failing_call_is_logged_and_the_next_still_runs(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    done = threading.Event()

    def broken() -> None:
        raise ConnectionError("broker and database both down")

    with caplog.at_level(logging.ERROR, logger="sms.carriers.simulator"):
        clock.call_later(0, broken)
        clock.call_later(0.01, done.set)
        assert done.wait(5)
    assert "test-clock: a call failed" in caplog.text and "both down" in caplog.text


def test_stop_drops_what_is_not_due_and_ends_the_thread_and_a_later_call_starts_one(
    clock: Clock,
) -> None:
    dropped = threading.Event()
    clock.call_later(0.2, dropped.set)
    clock.stop()
    deadline = time.monotonic() + 5
    while threads_named("test-clock") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads_named("test-clock") == []
    again = threading.Event()
    clock.call_later(0, again.set)
    assert again.wait(5)
    assert not dropped.wait(0.3)


def test_a_forked_child_runs_its_calls_on_a_thread_of_its_own() -> None:
    # The parent's clock is running (and may hold its lock) when the process forks.
    carrier = SimulatorCarrier(name="fork-sim", options={"DELIVERY_DELAY": 0.05})
    try:
        carrier._clock.call_later(60, lambda: None)
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            try:
                ran = threading.Event()
                carrier._clock.call_later(0, ran.set)
                os.write(write, b"1" if ran.wait(5) else b"0")
            finally:
                os._exit(0)
        os.close(write)
        answer = os.read(read, 1)
        os.close(read)
        os.waitpid(child, 0)
        assert answer == b"1"
    finally:
        carrier.close()


def test_receipts_are_handed_over_after_the_delay_from_one_thread() -> None:
    handed: list[tuple[float, int, Sequence[DeliveryReceipt]]] = []
    carrier = SimulatorCarrier(
        name="delayed-sim",
        options={"DELIVERY_DELAY": 0.2},
        receipt_sink=lambda receipts: handed.append(
            (time.monotonic(), threading.get_ident(), receipts)
        ),
    )
    try:
        started = time.monotonic()
        for n in range(3):
            batch = [
                OutboundSms(
                    recipient_id=n,
                    message_id=f"msg_{n}",
                    to=f"+25571234567{n}",
                    sender_id="MIFUMO",
                    text="Habari",
                )
            ]
            carrier.post_to_carrier(carrier.build_payload(batch), batch)
            carrier.after_recorded()
        deadline = time.monotonic() + 5
        while len(handed) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(handed) == 3
        assert all(at - started >= 0.2 for at, _thread, _receipts in handed)
        assert len({thread for _at, thread, _receipts in handed}) == 1
        assert [r.status for _at, _thread, receipts in handed for r in receipts] == [
            DeliveryStatus.DELIVERED
        ] * 3
    finally:
        carrier.close()
