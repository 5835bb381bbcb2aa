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


# The counters, marks and reads of ``count_mark_and_read`` as one command: the server runs
# them in order, and the client packs one command and parses one reply instead of one per key
# (a pipeline of the same eight commands cost the client 1.5 times the CPU per request).
# KEYS: the marks, then the counters, then the reads; ARGV: how many marks, how many counters,
# then each mark's and each counter's lifetime in seconds. Replies: 1/0 per mark (newly set),
# the count per counter, the value (or nil) per read.
_COUNT_MARK_AND_READ = """
local marks, counters = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, marks do
    out[i] = redis.call('SET', KEYS[i], 1, 'EX', ARGV[2 + i], 'NX') and 1 or 0
end
for i = marks + 1, marks + counters do
    redis.call('SET', KEYS[i], 0, 'EX', ARGV[2 + i], 'NX')
    out[i] = redis.call('INCR', KEYS[i])
end
for i = marks + counters + 1, #KEYS do
    out[i] = redis.call('GET', KEYS[i])
end
return out
"""
_script: Any = None


def count_mark_and_read(
    counters: Sequence[tuple[str, int]],
    marks: Sequence[tuple[str, int]] = (),
    reads: Sequence[str] = (),
) -> tuple[list[int], list[bool], list[bytes | None]]:
    """``count_and_mark``, and the values of the ``reads`` (full Redis keys, read as they
    are: see ``mifumo.local_cache``) in the same round trip."""
    cache = caches["default"]
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    global _script
    if _script is None:
        # Sent by its digest (EVALSHA); loaded when the server does not know it yet (its
        # first call, or after a restart).
        _script = client.register_script(_COUNT_MARK_AND_READ)
    keys = [cache.make_and_validate_key(key) for key, _ in (*marks, *counters)]
    seconds = [lifetime for _, lifetime in (*marks, *counters)]
    results = _script(
        keys=[*keys, *reads], args=[len(marks), len(counters), *seconds], client=client
    )
    new_marks = [bool(value) for value in results[: len(marks)]]
    counts = [int(value) for value in results[len(marks) : len(marks) + len(counters)]]
    values = list(results[len(marks) + len(counters) :])
    return counts, new_marks, values
