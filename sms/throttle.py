"""Throughput caps per carrier, shared by every process through the Django cache.

A carrier configured with ``RATE`` (SMS parts per second, what an SMSC counts as TPS) gets
one counter per wall-clock second in the cache (``mifumo.counters``), so every worker and
``run_smpp`` process draws from the same budget. A sender adds what it wants to the current
second's counter and may send what still fitted under the cap; when nothing fitted it sleeps
until the next second. Tokens asked for but refused in a full second are simply lost with
that second, which keeps the counter to one atomic ``incr`` per acquisition.

A fixed window lets a burst of up to the cap straddle a second boundary; the average over
whole seconds never exceeds the cap. When the cache is unreachable the cap is not enforced
(logged): refusing to send because the limiter is down would turn a cache outage into an
SMS outage.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.core.cache import cache as default_cache

from mifumo import counters
from sms.carriers import carrier_config

logger = logging.getLogger(__name__)

_KEY_TTL = 5  # seconds; a window's counter is useless after it, keep it a little longer
_WARN_EVERY = 60.0
_last_warning = 0.0


def carrier_rate(carrier: str) -> int:
    """The carrier's cap in parts per second; 0 when it has none."""
    try:
        config = carrier_config(carrier)
    except Exception:  # noqa: BLE001 - an unknown carrier fails where it is used
        return 0
    options = {str(key).upper(): value for key, value in config.items()}
    try:
        return max(0, int(options.get("RATE") or 0))
    except (TypeError, ValueError):
        return 0


class Throttle:
    def __init__(
        self,
        name: str,
        rate: int,
        *,
        cache: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.rate = rate
        self.cache = default_cache if cache is None else cache
        self.clock = clock
        self.sleep = sleep

    def acquire(self, want: int) -> int:
        """Block until at least one token is free; return how many of ``want`` (at most the
        rate) were taken."""
        want = max(1, min(want, self.rate))
        misses = 0
        while True:
            now = self.clock()
            end = counters.window_end(self.name, 1, now)
            try:
                count = counters.count(self.cache, f"throttle:{self.name}:{end}", want, _KEY_TTL)
            except ValueError:
                # The counter expired between add and incr (a new second began), or a cache
                # that cannot count at all.
                misses += 1
                if misses < 3:
                    continue
                _warn(f"throughput cap of {self.name} not enforced: the cache cannot count")
                return want
            except Exception as exc:  # noqa: BLE001 - fail open, see the module docstring
                _warn(f"throughput cap of {self.name} not enforced: cache unavailable ({exc})")
                return want
            before = count - want
            if before < self.rate:
                return min(want, self.rate - before)
            # Spread the waiting senders a little so they do not all hit the counter at once.
            self.sleep(max(0.0, end - now) + random.uniform(0, 0.005))

    def admit(self, costs: Sequence[int]) -> int:
        """How many of the next items (``costs``: parts each) may be sent now; blocks until
        at least the first one may. An item dearer than the whole rate costs the rate."""
        costs = [max(1, min(cost, self.rate)) for cost in costs]
        if not costs:
            return 0
        budget = self.acquire(sum(costs))
        count = used = 0
        while count < len(costs) and used + costs[count] <= budget:
            used += costs[count]
            count += 1
        while count == 0:
            budget += self.acquire(costs[0] - budget)
            if budget >= costs[0]:
                count = 1
        return count


def throttle_for(carrier: str) -> Throttle | None:
    rate = carrier_rate(carrier)
    return Throttle(carrier, rate) if rate else None


def _warn(text: str) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY:
        _last_warning = now
        logger.warning(text)
