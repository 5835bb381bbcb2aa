"""Sends' wakes made by a thread of their process, one per coalescing window: far fewer
``SET NX`` than sends and still a wake after the last commit, another wake for a send
committed during one, a thread of its own in a forked child, the hook's own wake with a window
of 0 or tasks run in place, and a thread that outlives a wake that failed.

Against the test Redis: every wake here is the real ``dispatch_wake``, only counted."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache

from mifumo.celery import app as celery_app
from sms.dispatch import wake
from sms.dispatch.wake import PENDING
from sms.services import message_send
from tests.workers import wait_until

THREAD = "dispatch-wake"


def phones(count: int, start: int = 0) -> list[str]:
    # Ending in 5: clear of the simulator's special endings 0001-0004.
    return [f"+25571{(start + i) * 10 + 5:07d}" for i in range(count)]


class Wakes:
    """``dispatch_wake`` counted: when each call started and in which thread; ``hold`` keeps
    a call inside until set, ``fail_next`` makes the next call raise."""

    def __init__(self) -> None:
        self.real = wake.dispatch_wake
        self.started: list[tuple[float, str]] = []
        self.entered = threading.Event()
        self.hold: threading.Event | None = None
        self.fail_next = False

    def __call__(self, *, force: bool = False) -> bool:
        self.started.append((time.monotonic(), threading.current_thread().name))
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("wake failed")
        return self.real(force=force)

    def threads(self) -> list[str]:
        return [name for _, name in self.started]


class Commits:
    """The sends' on-commit hook, noting when each ran (after its commit)."""

    def __init__(self) -> None:
        self.real = wake.dispatch_wake_soon
        self.at: list[float] = []

    def __call__(self) -> None:
        self.at.append(time.monotonic())
        self.real()


@pytest.fixture
def wakes(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wakes]:
    """Tasks published to the broker (not run in place), a window of 20 ms, the wakes
    counted; the waker thread is idle again when the test ends."""
    settings.MIFUMO_DISPATCH_WAKE_COALESCE_MS = 20
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=False)
    counted = Wakes()
    monkeypatch.setattr(wake, "dispatch_wake", counted)
    try:
        yield counted
    finally:
        if counted.hold is not None:
            counted.hold.set()
        assert wake.wake_flush()
        celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=True)


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> Commits:
    hook = Commits()
    monkeypatch.setattr("sms.services.dispatch_wake_soon", hook)
    return hook


def send(account: Any, recipients: list[str]) -> None:
    message_send(account=account, text="Habari", recipients=recipients)


@pytest.mark.django_db(transaction=True)
def test_sends_inside_a_window_share_wakes_and_the_last_commit_still_gets_one(
    alice: Any, wakes: Wakes, commits: Commits, settings: Any
) -> None:
    settings.MIFUMO_DISPATCH_WAKE_COALESCE_MS = window = 500
    count = 40
    start = time.monotonic()
    for phone in phones(count):
        send(alice, [phone])
    elapsed = time.monotonic() - start
    last = commits.at[-1]
    wait_until(lambda: wakes.started[-1][0] > last, timeout=5, interval=0.01)
    assert len(commits.at) == count
    assert set(wakes.threads()) == {THREAD}
    # One at the first commit, then at most one per window the sends lasted, and one after.
    assert len(wakes.started) <= 2 + elapsed * 1000 / window
    assert len(wakes.started) <= count // 4
    assert cache.get(PENDING)  # the real SET NX was made


@pytest.mark.django_db(transaction=True)
def test_a_send_committed_during_a_wake_gets_another_wake(
    alice: Any, wakes: Wakes, commits: Commits
) -> None:
    wakes.hold = threading.Event()
    send(alice, phones(1))
    assert wakes.entered.wait(5)  # the thread is inside dispatch_wake, after clearing the note
    send(alice, phones(1, start=1))
    assert len(wakes.started) == 1
    wakes.hold.set()
    wait_until(lambda: len(wakes.started) == 2, timeout=5, interval=0.01)
    assert wakes.started[1][0] > commits.at[1]
    assert wakes.threads() == [THREAD, THREAD]


@pytest.mark.django_db(transaction=True)
def test_a_failed_wake_does_not_stop_later_ones(
    alice: Any, wakes: Wakes, caplog: pytest.LogCaptureFixture
) -> None:
    wakes.fail_next = True
    send(alice, phones(1))
    wait_until(lambda: "dispatch wake failed" in caplog.text, timeout=5, interval=0.01)
    assert cache.get(PENDING) is None
    send(alice, phones(1, start=1))
    wait_until(lambda: len(wakes.started) == 2, timeout=5, interval=0.01)
    wait_until(lambda: cache.get(PENDING), timeout=5, interval=0.01)
    assert wakes.threads() == [THREAD, THREAD]


@pytest.mark.parametrize(("window", "eager"), [(0, False), (20, True)])
@pytest.mark.django_db(transaction=True)
def test_a_window_of_0_or_tasks_run_in_place_wake_in_the_hook(
    alice: Any, wakes: Wakes, settings: Any, window: int, eager: bool
) -> None:
    settings.MIFUMO_DISPATCH_WAKE_COALESCE_MS = window
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=eager)
    send(alice, phones(1))
    send(alice, phones(1, start=1))
    # Made in the send itself, once each, before it returned.
    assert wakes.threads() == ["MainThread", "MainThread"]


def test_a_forked_child_starts_a_waker_thread_of_its_own(wakes: Wakes) -> None:
    wake.dispatch_wake_soon()
    wait_until(lambda: wakes.started, timeout=5, interval=0.01)
    assert wake.wake_flush()
    parent = wake._waker
    assert parent is not None and parent.thread.is_alive()
    # Set: the child's wake is its SET NX only, nothing published from the child.
    cache.add(PENDING, 1, timeout=60)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running the parent's exit code
        try:
            os.close(read)
            before = len(wakes.started)
            wake.dispatch_wake_soon()
            deadline = time.monotonic() + 10
            while len(wakes.started) == before and time.monotonic() < deadline:
                time.sleep(0.01)
            child = wake._waker
            report = {
                "new": child is not parent,
                "pid": child is not None and child.pid == os.getpid(),
                "alive": child is not None and child.thread.is_alive(),
                "threads": [name for _, name in wakes.started[before:]],
            }
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = json.loads(pipe.read() or b"{}")
    os.waitpid(pid, 0)
    assert report == {"new": True, "pid": True, "alive": True, "threads": [THREAD]}
    # The parent's own thread carries on.
    assert wake._waker is parent and parent.thread.is_alive()
    before = len(wakes.started)
    wake.dispatch_wake_soon()
    wait_until(lambda: len(wakes.started) > before, timeout=5, interval=0.01)
