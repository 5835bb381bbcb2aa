"""The Django cache as configured: Redis, one client per connection pool, and any key taken
without memcached's check (mifumo/cache.py)."""

import warnings

from django.core.cache import cache, caches

from mifumo.cache import PooledRedisCache


def test_the_default_cache_is_the_pooled_redis_one():
    assert isinstance(caches["default"], PooledRedisCache)


def test_a_key_memcached_would_refuse_is_kept_without_a_warning():
    key = "count:" + "x y\x01" * 100  # longer than 250 characters, a space, a control character
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.set(key, 42, 30)
        assert cache.get(key) == 42
        assert cache.add(key, 43, 30) is False
        cache.delete(key)
    assert cache.get(key) is None


def test_one_client_serves_every_call_of_a_pool():
    backend = caches["default"]._cache  # type: ignore[attr-defined]
    assert backend.get_client(write=True) is backend.get_client(write=True)
