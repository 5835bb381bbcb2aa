"""Fixed-window counters in the shared cache (Redis in production), for the API's rate
limits (``integration.ratelimit``), the sign-in throttles (``integration.throttle``) and the
carriers' throughput caps (``sms.throttle``).

A counter is created at 0 with its window's lifetime and then incremented atomically, so
every process counts against the same budget and a later hit never pushes the expiry out.
A window either starts at a counter's first hit (no window in the key) or is aligned on the
clock (``window_end`` in the key). Each caller decides what an unreachable cache means; all
of them fail open.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from typing import Any

from django.core.cache import caches


def window_end(key: str, seconds: int, now: float | None = None, *, spread: bool = False) -> int:
    """The end (a Unix time) of the aligned window of ``seconds`` that ``now`` falls in.
    ``spread``: each key's windows are shifted by an offset of their own, so that resets
    are spread out."""
    second = int(time.time() if now is None else now)
    offset = zlib.crc32(key.encode()) % seconds if spread else 0
    end = second - second % seconds + offset
    if end <= second:
        end += seconds
    return end


def count(cache: Any, key: str, amount: int, seconds: int) -> int:
    """Add ``amount`` to one counter living ``seconds`` from its creation, on any Django
    cache; return its count. Raises ValueError when the counter expired in between (or the
    cache cannot count), and whatever the cache raises when it is unreachable."""
    cache.add(key, 0, timeout=seconds)
    return int(cache.incr(key, amount))


def count_and_mark(
    counters: Sequence[tuple[str, int]], marks: Sequence[tuple[str, int]] = ()
) -> tuple[list[int], list[bool]]:
    """Add one to each counter and set each mark that is not set yet, each key living for
    the given seconds from its creation; return the counts and which marks were new.

    One round trip for the whole set. A counter is created at 0 with its lifetime (SET NX
    EX, so a later hit never pushes the expiry out) and then incremented, which keeps the
    lifetime. Raises whatever the client raises when Redis is unreachable."""
    counts, new_marks, _ = count_mark_and_read(counters, marks)
    return counts, new_marks


def count_mark_and_read(
    counters: Sequence[tuple[str, int]],
    marks: Sequence[tuple[str, int]] = (),
    reads: Sequence[str] = (),
) -> tuple[list[int], list[bool], list[bytes | None]]:
    """``count_and_mark``, and the values of the ``reads`` (full Redis keys, read as they
    are: see ``mifumo.local_cache``) in the same round trip."""
    cache = caches["default"]
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    pipe = client.pipeline(transaction=False)
    for key, seconds in marks:
        pipe.set(cache.make_and_validate_key(key), 1, ex=seconds, nx=True)
    for key, seconds in counters:
        full = cache.make_and_validate_key(key)
        pipe.set(full, 0, ex=seconds, nx=True)
        pipe.incr(full)
    for key in reads:
        pipe.get(key)
    results = pipe.execute()
    new_marks = [bool(value) for value in results[: len(marks)]]
    counted = results[len(marks) : len(marks) + 2 * len(counters)]
    counts = [int(value) for value in counted[1::2]]
    values = list(results[len(marks) + 2 * len(counters) :])
    return counts, new_marks, values
