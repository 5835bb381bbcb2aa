"""Django's Redis cache, keeping one client per connection pool.

The stock client builds a new ``redis.Redis`` (and its table of response callbacks) for
every cache call; rate limits make several calls per request, so that cost showed up in
request profiles. The clients are thread-safe and share the pool either way. Rate limits
and the key's last-use mark go to Redis in one pipelined round trip (``count_and_mark``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class PooledRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # The stubs do not describe the stock client's private helpers used here.
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
            client = self._clients[index] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class PooledRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = PooledRedisCacheClient


def count_and_mark(
    counters: Sequence[tuple[str, int]], marks: Sequence[tuple[str, int]] = ()
) -> tuple[list[int], list[bool]]:
    """Add one to each counter and set each mark that is not set yet, each key living for
    the given seconds from its creation; return the counts and which marks were new.

    One round trip for the whole set. A counter is created at 0 with its lifetime (SET NX
    EX, so a later hit never pushes the expiry out) and then incremented, which keeps the
    lifetime. Raises whatever the client raises when Redis is unreachable."""
    cache = caches["default"]
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    pipe = client.pipeline(transaction=False)
    for key, seconds in marks:
        pipe.set(cache.make_and_validate_key(key), 1, ex=seconds, nx=True)
    for key, seconds in counters:
        full = cache.make_and_validate_key(key)
        pipe.set(full, 0, ex=seconds, nx=True)
        pipe.incr(full)
    results = pipe.execute()
    new_marks = [bool(value) for value in results[: len(marks)]]
    counts = [int(value) for value in results[len(marks) + 1 :: 2]]
    return counts, new_marks
