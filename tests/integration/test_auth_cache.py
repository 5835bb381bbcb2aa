"""The per-process cache of API keys (integration.auth.KEYS), exercised in this process
through Django's test client, with real PostgreSQL and Redis."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integration import auth, keys
from integration.models import Account, ApiKey, Permission
from integration.services import (
    IssuedKey,
    account_set_limits,
    account_set_status,
    account_top_up,
    api_key_revoke,
)
from integration.versions import account_version
from mifumo import local_cache
from tests.helpers import Api, assert_envelope
from tests.workers import service_env

ROOT = Path(__file__).resolve().parents[2]
BALANCE = "sms/balance/"
SEND = {"message": "Habari", "recipients": ["+255712345678"]}


@pytest.fixture(autouse=True)
def _empty_key_cache() -> Any:
    auth.KEYS.clear()
    yield
    auth.KEYS.clear()


def warm(api: Api) -> None:
    """Three requests: the first loads the key, the second confirms it under a version read
    before its reload, from the third on it is served from the process's cache."""
    for _ in range(3):
        assert_envelope(api.get(BALANCE), 200)


def key_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if ApiKey._meta.db_table in q["sql"]]


def bump_from_elsewhere(account: Account) -> None:
    """What another process's change does to the version: a write straight to Redis."""
    client = caches["default"]._cache.get_client(write=True)  # type: ignore[attr-defined]
    client.incr(local_cache.redis_key(account_version(account.pk)))


def assert_401(response: Any, reason: str) -> None:
    body = assert_envelope(response, 401, "INVALID_CREDENTIALS")
    assert reason in body["details"], body
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_a_known_key_costs_no_query_before_the_views_own(api: Api) -> None:
    with CaptureQueriesContext(connection) as first:
        assert_envelope(api.get(BALANCE), 200)
    assert key_queries(first)  # looked up in the database
    assert_envelope(api.get(BALANCE), 200)
    with CaptureQueriesContext(connection) as cached:
        assert_envelope(api.get(BALANCE), 200)
    # The balance view's own read comes first (the usage log's row is written after).
    assert cached.captured_queries, cached.captured_queries
    assert '"balance"' in cached.captured_queries[0]["sql"], cached.captured_queries
    assert not key_queries(cached)


@pytest.mark.django_db
def test_a_cached_send_makes_no_key_or_account_query(api: Api) -> None:
    warm(api)
    with CaptureQueriesContext(connection) as queries:
        assert_envelope(api.post("sms/send/", SEND), 200)
    assert not key_queries(queries)
    assert not [
        q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT 1")
    ]


@pytest.mark.django_db
def test_a_wrong_secret_for_a_cached_prefix_fails(api: Api, alice_key: IssuedKey) -> None:
    warm(api)
    raw = alice_key.raw
    wrong = raw[:-4] + ("AAAA" if raw[-4:] != "AAAA" else "BBBB")
    assert auth.KEYS.get(keys.lookup_prefix(wrong)) is not None
    assert_401(Api(wrong).get(BALANCE), "invalid")
    assert_envelope(api.get(BALANCE), 200)


@pytest.mark.django_db
def test_a_revoke_is_seen_on_the_next_request(api: Api, alice: Account, make_key: Any) -> None:
    other = make_key(alice, name="other")
    other_api = Api(other.raw)
    warm(other_api)
    assert_envelope(api.post(f"keys/{other.api_key.pk}/revoke/"), 200)
    assert_401(other_api.get(BALANCE), "revoked")


@pytest.mark.django_db
def test_a_deleted_key_fails_on_the_next_request(alice: Account, make_key: Any) -> None:
    issued = make_key(alice, name="doomed")
    api = Api(issued.raw)
    warm(api)
    ApiKey.objects.get(pk=issued.api_key.pk).delete()  # as the admin deletes it
    assert_401(api.get(BALANCE), "invalid")
    assert auth.KEYS.get(issued.api_key.prefix) is None


@pytest.mark.django_db
def test_a_key_refused_on_reload_counts_against_its_address(
    api: Api, alice_key: IssuedKey, settings: Any
) -> None:
    settings.MIFUMO_RATE_ANONYMOUS = (1, 60)
    warm(api)
    api_key_revoke(api_key=alice_key.api_key)
    assert_401(api.get(BALANCE), "revoked")  # refused after the reload: counted
    assert_envelope(api.get(BALANCE), 429, "RATE_LIMIT_EXCEEDED")


@pytest.mark.django_db(transaction=True)
def test_a_committed_revoke_is_seen_on_the_next_request(
    api: Api, alice: Account, make_key: Any
) -> None:
    other = make_key(alice, name="other")
    other_api = Api(other.raw)
    warm(other_api)
    assert_envelope(api.post(f"keys/{other.api_key.pk}/revoke/"), 200)
    assert_401(other_api.get(BALANCE), "revoked")
    # A key revoking itself fails on its next request too.
    warm(api)
    assert_envelope(api.post(f"keys/{api_own_id(alice)}/revoke/"), 200)
    assert_401(api.get(BALANCE), "revoked")


def api_own_id(account: Account) -> int:
    return ApiKey.objects.get(account=account, name="test key").pk


@pytest.mark.django_db
def test_a_change_bumps_the_version_now_and_again_at_commit(
    alice_key: IssuedKey, django_capture_on_commit_callbacks: Any
) -> None:
    client = caches["default"]._cache.get_client(write=True)  # type: ignore[attr-defined]
    name = local_cache.redis_key(account_version(alice_key.api_key.account_id))
    before = client.get(name)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        api_key_revoke(api_key=alice_key.api_key)
    during = client.get(name)
    assert during != before
    assert callbacks
    for callback in callbacks:
        callback()
    assert client.get(name) not in (before, during)


@pytest.mark.django_db
def test_expiry_is_seen_without_a_change(alice: Account, make_key: Any) -> None:
    issued = make_key(alice, expires_at=timezone.now() + timedelta(seconds=1.5))
    api = Api(issued.raw)
    warm(api)
    time.sleep(1.6)
    assert_401(api.get(BALANCE), "expired")


@pytest.mark.django_db
def test_an_expiry_moved_into_the_past_is_seen(api: Api, alice_key: IssuedKey) -> None:
    warm(api)
    key = ApiKey.objects.get(pk=alice_key.api_key.pk)
    key.expires_at = timezone.now() - timedelta(seconds=1)
    key.save(update_fields=["expires_at"])  # as the admin's form saves it
    assert_401(api.get(BALANCE), "expired")


@pytest.mark.django_db
def test_suspension_and_reactivation_are_seen_on_the_next_request(api: Api, alice: Account) -> None:
    warm(api)
    account_set_status(account=alice, status=Account.Status.SUSPENDED)
    assert_envelope(api.get(BALANCE), 403, "PERMISSION_DENIED")
    assert_envelope(api.get(BALANCE), 403, "PERMISSION_DENIED")
    account_set_status(account=alice, status=Account.Status.ACTIVE)
    assert_envelope(api.get(BALANCE), 200)


@pytest.mark.django_db
def test_a_limit_change_is_seen_on_the_next_request(api: Api, alice: Account) -> None:
    warm(api)
    account_set_limits(account=alice, limits={"api_per_hour": 2, "sms_per_minute": 1})
    response = api.get(BALANCE)
    assert response["X-RateLimit-Limit"] == "2"
    assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")
    account_set_limits(account=alice, limits={"api_per_hour": 1000})
    assert_envelope(api.post("sms/send/", SEND), 200)
    body = assert_envelope(api.post("sms/send/", SEND), 429, "RATE_LIMIT_EXCEEDED")
    assert body["details"]["bucket"] == "sms_send"


@pytest.mark.django_db
def test_a_message_length_limit_change_is_seen(api: Api, alice: Account) -> None:
    warm(api)
    long = {**SEND, "message": "x" * 200}
    assert_envelope(api.post("sms/send/", long), 400, "MESSAGE_TOO_LONG")
    account_set_limits(account=alice, limits={"max_message_length": 300})
    assert_envelope(api.post("sms/send/", long), 200)
    account_set_limits(account=alice, limits={"max_message_length": 100})
    body = assert_envelope(api.post("sms/send/", long), 400, "MESSAGE_TOO_LONG")
    assert body["details"]["limit"] == 100


@pytest.mark.django_db
def test_a_permission_change_is_seen_both_ways(
    api: Api, alice: Account, alice_key: IssuedKey
) -> None:
    warm(api)
    key = ApiKey.objects.get(pk=alice_key.api_key.pk)
    key.permission = Permission.READ
    key.save(update_fields=["permission"])
    assert_envelope(api.post("sms/send/", SEND), 403, "PERMISSION_DENIED")
    caches["default"].clear()  # fresh counters (and versions) for the second half
    account_set_limits(account=alice, limits={"sms_per_minute": 1})
    warm(api)
    key.permission = Permission.WRITE
    key.save(update_fields=["permission"])
    # The cached key is refused, the reloaded one is not: the send goes through and is
    # counted in the send bucket, so the next one is over its limit of one.
    assert_envelope(api.post("sms/send/", SEND), 200)
    body = assert_envelope(api.post("sms/send/", SEND), 429, "RATE_LIMIT_EXCEEDED")
    assert body["details"]["bucket"] == "sms_send"


@pytest.mark.django_db
def test_a_database_change_with_a_bump_from_elsewhere_is_seen(
    api: Api, alice: Account, alice_key: IssuedKey
) -> None:
    warm(api)
    # Bypasses the models' signals: nothing here bumps the version.
    ApiKey.objects.filter(pk=alice_key.api_key.pk).update(revoked_at=timezone.now())
    assert_envelope(api.get(BALANCE), 200)  # the cache cannot know
    bump_from_elsewhere(alice)
    assert_401(api.get(BALANCE), "revoked")


CHILD = """
import django
django.setup()
from integration.models import ApiKey
from integration.services import api_key_revoke
api_key_revoke(api_key=ApiKey.objects.get(pk={pk}))
"""


@pytest.mark.django_db(transaction=True)
def test_a_revoke_in_another_process_is_seen_on_the_next_request(alice_key: IssuedKey) -> None:
    api = Api(alice_key.raw)
    warm(api)
    subprocess.run(
        [sys.executable, "-c", CHILD.format(pk=alice_key.api_key.pk)],
        cwd=ROOT,
        env=service_env(),
        check=True,
        timeout=120,
    )
    assert_401(api.get(BALANCE), "revoked")


def redis_down() -> override_settings:
    """The default cache pointed at a port nothing listens on."""
    default = django_settings.CACHES["default"]
    return override_settings(
        CACHES={
            "default": {
                **default,
                "LOCATION": "redis://127.0.0.1:9/0",
                "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
            }
        }
    )


@pytest.mark.django_db
def test_with_redis_down_nothing_cached_is_trusted(api: Api, alice_key: IssuedKey) -> None:
    warm(api)
    # Unannounced (no signal, no bump): only a database lookup can see it.
    ApiKey.objects.filter(pk=alice_key.api_key.pk).update(revoked_at=timezone.now())
    with redis_down():
        assert_401(api.get(BALANCE), "revoked")


@pytest.mark.django_db
def test_with_redis_down_a_good_key_is_served_from_the_database(api: Api, alice: Account) -> None:
    warm(api)
    with redis_down():
        for _ in range(3):
            with CaptureQueriesContext(connection) as queries:
                response = api.get(BALANCE)
            assert_envelope(response, 200)
            assert key_queries(queries)
        # A change made while Redis is down still saves.
        account_set_limits(account=alice, limits={"api_per_hour": 5})
        assert_envelope(api.get(BALANCE), 200)


@pytest.mark.django_db
def test_the_balance_is_never_taken_from_the_cache(api: Api, alice: Account) -> None:
    warm(api)
    account_top_up(account=alice, amount="123.00")
    data = assert_envelope(api.get(BALANCE), 200)["data"]
    assert data["balance"] == float(Account.objects.get(pk=alice.pk).balance)
    entry = auth.KEYS.get(ApiKey.objects.get(account=alice).prefix)
    assert entry is not None
    account = auth._kept(entry.value).account
    with CaptureQueriesContext(connection) as queries:
        balance = account.balance
    assert balance == Account.objects.get(pk=alice.pk).balance
    assert len(queries.captured_queries) == 1  # deferred: read from the database


@pytest.mark.django_db
def test_the_key_cache_is_bounded(alice: Account, make_key: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(auth.KEYS, "max_entries", 2)
    issued = [make_key(alice, name=f"k{i}") for i in range(4)]
    for key in issued:
        assert_envelope(Api(key.raw).get(BALANCE), 200)
        assert len(auth.KEYS) <= 2
    prefixes = [key.api_key.prefix for key in issued]
    assert auth.KEYS.get(prefixes[0]) is None and auth.KEYS.get(prefixes[-1]) is not None


@pytest.mark.django_db
def test_entries_have_a_maximum_age(api: Api, alice_key: IssuedKey, monkeypatch: Any) -> None:
    warm(api)
    monkeypatch.setattr(auth.KEYS, "max_age", 0.05)
    time.sleep(0.1)
    assert auth.KEYS.get(alice_key.api_key.prefix) is None
    with CaptureQueriesContext(connection) as queries:
        assert_envelope(api.get(BALANCE), 200)
    assert key_queries(queries)


def test_the_versioned_cache_drops_the_least_recently_used() -> None:
    cache: local_cache.VersionedCache[str, int] = local_cache.VersionedCache(
        max_entries=2, max_age=60
    )
    cache.put("a", 1, "v")
    cache.put("b", 2, "v")
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", 3, None)
    assert cache.get("b") is None
    assert [cache.get(k) is not None for k in ("a", "c")] == [True, True]
    entry = cache.get("c")
    assert entry is not None and entry.current(None) and not entry.current("v")
    cache.put("d", 4, local_cache.UNVERIFIED)
    unverified = cache.get("d")
    assert unverified is not None and not unverified.current(None)
