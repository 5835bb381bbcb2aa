"""The carrier registry closes every carrier at exit, even when one of them fails to."""

from __future__ import annotations

import weakref

import pytest

from sms.carriers import registry


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the probes: the carriers other tests built stay open.
    monkeypatch.setattr(registry, "_held", weakref.WeakSet())


class Probe:
    def __init__(self, name: str, *, fails: bool = False) -> None:
        self.name = name
        self.fails = fails
        self.closed = False
        self.forgot = False

    def close(self) -> None:
        if self.fails:
            raise OSError("socket already gone")
        self.closed = True

    def forget_after_fork(self) -> None:
        self.forgot = True


def test_a_carrier_that_fails_to_close_does_not_keep_the_others_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, broken, last = Probe("first"), Probe("broken", fails=True), Probe("last")
    for carrier in (first, broken, last):
        registry.hold(carrier)
    registry.close_all()
    assert first.closed and last.closed
    assert "closing carrier broken failed" in caplog.text


def test_after_a_fork_every_held_carrier_forgets_what_it_inherited() -> None:
    carriers = [Probe("a"), Probe("b")]
    for carrier in carriers:
        registry.hold(carrier)
    registry.forget_after_fork()
    assert all(carrier.forgot for carrier in carriers)
