"""Django's Redis cache, keeping one client per connection pool, without memcached's key check.

The stock client builds a new ``redis.Redis`` (and its table of response callbacks) for
every cache call; rate limits make several calls per request, so that cost showed up in
request profiles. The clients are thread-safe and share the pool either way.

Django checks every key of every call against what memcached would refuse (longer than 250
characters, a control character or a space), in a Python loop over its characters, and only
warns. Redis takes any key, so the check is skipped: about 1% of a send's instructions
(``bench.instructions``), every request making several cache calls.
"""

from __future__ import annotations

from typing import Any

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

    def validate_key(self, key: str) -> None:
        """Any key will do (see the module's docstring)."""
