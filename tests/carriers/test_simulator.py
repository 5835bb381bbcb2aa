"""The simulator hands its receipts over after the delay, from one thread per process."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
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


def submit(carrier: SimulatorCarrier, n: int, tail: str = "5") -> None:
    """One message submitted and its submission recorded."""
    batch = [
        OutboundSms(
            recipient_id=n,
            message_id=f"msg_{n}",
            to=f"+255712{n:02d}{tail:0>4}",
            sender_id="MIFUMO",
            text="Habari",
        )
    ]
    carrier.post_to_carrier(carrier.build_payload(batch), batch)
    carrier.after_recorded()


Handed = list[tuple[float, int, Sequence[DeliveryReceipt]]]


Made = Callable[..., tuple[SimulatorCarrier, Handed]]


@pytest.fixture
def simulator() -> Iterator[Made]:
    """Simulators with a delay and a receipt linger of the test's, each handing its receipts
    over into a list of (when, from which thread, the receipts); closed after the test."""
    made: list[SimulatorCarrier] = []

    def make(delay: float, linger: float) -> tuple[SimulatorCarrier, Handed]:
        handed: Handed = []
        carrier = SimulatorCarrier(
            name="delayed-sim",
            options={"DELIVERY_DELAY": delay},
            receipt_sink=lambda receipts: handed.append(
                (time.monotonic(), threading.get_ident(), receipts)
            ),
        )
        carrier.RECEIPT_LINGER = linger
        made.append(carrier)
        return carrier, handed

    yield make
    for carrier in made:
        carrier.close()


def wait_for(handed: Handed, count: int) -> None:
    deadline = time.monotonic() + 5
    while sum(len(receipts) for _, _, receipts in handed) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_receipts_recorded_together_are_handed_over_together_after_the_delay(
    simulator: Made,
) -> None:
    carrier, handed = simulator(0.2, linger=0.5)
    started = time.monotonic()
    for n in range(3):
        submit(carrier, n)
    wait_for(handed, 3)
    # One batch for the three, no earlier than the delay after the last of them.
    assert len(handed) == 1
    at, _thread, receipts = handed[0]
    assert at - started >= 0.2
    assert [r.status for r in receipts] == [DeliveryStatus.DELIVERED] * 3
    assert len({r.carrier_message_id for r in receipts}) == 3


def test_a_receipt_recorded_after_the_gathering_closed_goes_in_the_next_one(
    simulator: Made,
) -> None:
    carrier, handed = simulator(0.2, linger=0.1)
    started = time.monotonic()
    submit(carrier, 0)
    submit(carrier, 1, tail="1")  # undeliverable: a failed receipt, same gathering
    time.sleep(0.15)
    submit(carrier, 2)
    recorded_last = time.monotonic()
    wait_for(handed, 3)
    assert [[r.status for r in receipts] for _, _, receipts in handed] == [
        [DeliveryStatus.DELIVERED, DeliveryStatus.UNDELIVERABLE],
        [DeliveryStatus.DELIVERED],
    ]
    assert handed[0][0] - started >= 0.2
    assert handed[1][0] - recorded_last >= 0.2
    # Every batch from the one thread of the clock.
    assert len({thread for _at, thread, _receipts in handed}) == 1


def test_a_receipt_with_another_delay_never_joins_a_gathering(simulator: Made) -> None:
    carrier, handed = simulator(1.5, linger=0.3)
    submit(carrier, 0)
    carrier.options = {**carrier.options, "DELIVERY_DELAY": 0.1}
    started = time.monotonic()
    submit(carrier, 1)
    wait_for(handed, 1)
    # The shorter delay's receipt is not held back for the open gathering's time.
    assert len(handed) == 1 and len(handed[0][2]) == 1
    assert 0.1 <= handed[0][0] - started < 1.5
    wait_for(handed, 2)
    assert [len(receipts) for _, _, receipts in handed] == [1, 1]


def test_a_forked_child_gathers_receipts_of_its_own(simulator: Made) -> None:
    """The parent forks with a gathering open and its lock held by another thread: the
    child gathers and hands over its own receipts, and only those."""
    carrier, handed = simulator(0.05, linger=0.05)
    submit(carrier, 0)
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with carrier._gathering_lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert held.wait(5)
    read, write = os.pipe()
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            try:
                submit(carrier, 1)
                wait_for(handed, 1)
                time.sleep(0.3)  # whatever came from the parent's gathering would be here now
                os.write(write, json.dumps(destinations(handed)).encode())
            finally:
                os._exit(0)
    finally:
        release.set()
        holder.join()
    os.close(write)
    # A child stuck on the parent's lock would never answer.
    answered, _, _ = select.select([read], [], [], 10)
    if not answered:
        os.kill(child, signal.SIGKILL)
    answer = os.read(read, 1000) if answered else b"null"
    os.close(read)
    os.waitpid(child, 0)
    assert json.loads(answer) == ["+255712010005"]
    wait_for(handed, 1)
    assert destinations(handed) == ["+255712000005"]


def destinations(handed: Handed) -> list[str]:
    return [r.raw["to"] for _, _, receipts in handed for r in receipts]
