"""The simulator: accepts everything plausible and reports delivery after a delay.

Magic numbers for integrators (last four digits of the destination):
- ``0001`` is always undeliverable (a failed receipt),
- ``0002`` is always rejected at submit (refunded),
- ``0003`` never gets a receipt, so it expires,
- ``0004`` is a temporary carrier failure at submit, retried, then failed.
Other numbers are delivered, or fail with probability FAILURE_RATIO.
Options: DELIVERY_DELAY (seconds, default 1), FAILURE_RATIO (0.0).

Receipts recorded within ``RECEIPT_LINGER`` of the first of a gathering reach the sink
together, that much after the delay, as an SMSC's do through the SMPP carrier's receipt
worker: one receipts task for many rather than one each.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from ulid import ULID

from sms.carriers.base import (
    BaseCarrier,
    DeliveryReceipt,
    DeliveryStatus,
    OutboundSms,
    SubmitResult,
)

logger = logging.getLogger(__name__)

UNDELIVERABLE = "0001"
REJECTED = "0002"
NO_RECEIPT = "0003"
TEMPORARY_FAILURE = "0004"


class Clock:
    """One thread that runs calls when they are due, in the order they fall due.

    The simulator's receipts go through it rather than through a thread each: a thread that
    queues a Celery task pays for setting up Celery's per-thread state (its result backend,
    looked up among every installed package's entry points) once, which a thread per batch
    would pay for every batch. Started on first use; after a fork the child starts its own.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._reset()

    def _reset(self) -> None:
        self._wakeup = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        # The running thread's generation; a thread whose generation has passed ends.
        self._generation = 0
        self._running = False

    def call_later(self, delay: float, call: Callable[[], None]) -> None:
        with self._wakeup:
            if not self._running:
                self._running = True
                self._generation += 1
                threading.Thread(
                    target=self._run, args=(self._generation,), name=self.name, daemon=True
                ).start()
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), call))
            self._wakeup.notify()

    def stop(self) -> None:
        """End the thread; calls not yet due are dropped."""
        with self._wakeup:
            self._running = False
            self._generation += 1
            self._due.clear()
            self._wakeup.notify()

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's thread did not come along, and its lock may have
        been held when the parent forked."""
        self._reset()

    def _run(self, generation: int) -> None:
        while True:
            with self._wakeup:
                while generation == self._generation and (
                    not self._due or self._due[0][0] > time.monotonic()
                ):
                    self._wakeup.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if generation != self._generation:
                    return
                _at, _order, call = heapq.heappop(self._due)
            try:
                call()
            except Exception:
                logger.exception("%s: a call failed", self.name)


@dataclass(eq=False)
class _Gathering:
    """Receipts that go to the sink together: those recorded until ``closes``, with one
    delay."""

    closes: float
    delay: float
    receipts: list[DeliveryReceipt] = field(default_factory=list)


class SimulatorCarrier(BaseCarrier):
    carrier_name = "simulator"
    # Seconds a gathering of receipts stays open to the ones recorded after its first.
    RECEIPT_LINGER = 0.05

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Receipts wait here, per dispatching thread, until their submissions are recorded.
        self._pending = threading.local()
        self._clock = Clock(f"{self.name}-receipts")
        self._gathering_lock = threading.Lock()
        self._gathering: _Gathering | None = None

    def post_to_carrier(self, payload: Any, batch: Sequence[OutboundSms]) -> list[SubmitResult]:
        results: list[SubmitResult] = []
        receipts: list[DeliveryReceipt] = []
        failure_ratio = float(self.setting("FAILURE_RATIO", 0.0))
        now = timezone.now()
        for sms in batch:
            tail = sms.to[-4:]
            if tail == REJECTED:
                results.append(
                    SubmitResult.rejected(sms, "REJECTED", "Rejected by the carrier (simulated)")
                )
                continue
            if tail == TEMPORARY_FAILURE:
                results.append(
                    SubmitResult.rejected(
                        sms, "CARRIER_BUSY", "Carrier busy (simulated)", permanent=False
                    )
                )
                continue
            carrier_id = f"sim-{ULID()}"
            results.append(SubmitResult.ok(sms, carrier_id))
            if tail == NO_RECEIPT:
                continue
            failed = tail == UNDELIVERABLE or random.random() < failure_ratio
            receipts.append(
                DeliveryReceipt(
                    carrier=self.name,
                    carrier_message_id=carrier_id,
                    status=DeliveryStatus.UNDELIVERABLE if failed else DeliveryStatus.DELIVERED,
                    timestamp=now,
                    error_code="UNDELIVERABLE" if failed else None,
                    raw={"simulated": True, "to": sms.to},
                )
            )
        self._pending.receipts = [*getattr(self._pending, "receipts", []), *receipts]
        return results

    def after_recorded(self) -> None:
        receipts = getattr(self._pending, "receipts", [])
        self._pending.receipts = []
        if not receipts:
            return
        delay = float(self.setting("DELIVERY_DELAY", 1.0))
        if delay <= 0:
            self.emit_receipts(receipts)
            return
        # The receipts are handed over after the dispatcher has recorded the submission.
        with self._gathering_lock:
            open_ = self._gathering
            if open_ is not None and open_.delay == delay and time.monotonic() <= open_.closes:
                open_.receipts.extend(receipts)
                return
            gathering = self._gathering = _Gathering(
                time.monotonic() + self.RECEIPT_LINGER, delay, list(receipts)
            )
        # Due once the last receipt that can join has waited its delay.
        self._clock.call_later(delay + self.RECEIPT_LINGER, lambda: self._emit_gathered(gathering))

    def _emit_gathered(self, gathering: _Gathering) -> None:
        with self._gathering_lock:
            # Closed before it is read: nothing joins it from here on.
            if self._gathering is gathering:
                self._gathering = None
        self.emit_receipts(gathering.receipts)

    def close(self) -> None:
        self._clock.stop()
        with self._gathering_lock:
            self._gathering = None
        super().close()

    def forget_after_fork(self) -> None:
        self._clock.forget_after_fork()
        # The parent's lock may have been held when it forked; its gathering is its own.
        self._gathering_lock = threading.Lock()
        self._gathering = None
        super().forget_after_fork()
