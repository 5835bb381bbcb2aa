"""Shared fixtures: accounts alice and bob, keys of each permission, an API client.

The suite runs on PostgreSQL and Redis: those of DATABASE_URL / REDIS_URL, or the embedded
ones `python3 dev.py test` starts when they are unset.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from integration.models import Account, Permission
from integration.services import IssuedKey, account_create, api_key_create
from mifumo.celery import app as celery_app
from sms import pricing
from sms.carriers import reset_carriers
from sms.carriers.locmem import LocmemCarrier
from sms.models import PriceRule
from tests.helpers import Api

pytest_plugins = ["tests.workers"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop at once, saying why, when Redis does not answer (pytest-django does the same for
    the database). MIFUMO_REQUIRE_SERVICES=1 (CI) insists on servers named in the
    environment, never the embedded defaults."""
    if os.environ.get("MIFUMO_REQUIRE_SERVICES") == "1":
        unset = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
        if unset:
            pytest.exit(f"MIFUMO_REQUIRE_SERVICES=1 and {', '.join(unset)} unset", returncode=4)
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis ({settings.REDIS_URL}) does not answer: {exc}", returncode=4)


@pytest.fixture(autouse=True)
def _isolated(settings: Any) -> Iterator[None]:
    settings.MIFUMO_USAGE_LOG_FLUSH_SIZE = 1  # write usage rows inside the test's transaction
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "simulator": {**settings.MIFUMO_CARRIERS["simulator"], "DELIVERY_DELAY": 0},
    }
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=True, task_eager_propagates=True)
    cache.clear()
    reset_carriers()
    pricing.clear_cache()
    LocmemCarrier.reset()
    yield
    cache.clear()
    reset_carriers()
    pricing.clear_cache()


@pytest.fixture(autouse=True)
def _default_price_rule(request: pytest.FixtureRequest) -> None:
    """Transactional tests flush every table, data migrations included; put back the rule
    every installation starts with."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(
        request.fixturenames
    )
    if uses_db:
        request.getfixturevalue(
            "db" if "transactional_db" not in request.fixturenames else "transactional_db"
        )
        PriceRule.objects.get_or_create(
            country_code="255", prefix="", defaults={"price_per_segment": Decimal("10.00")}
        )


@pytest.fixture
def locmem(settings: Any) -> type[LocmemCarrier]:
    """Route live sends to the in-memory carrier; its outbox shows what was submitted."""
    settings.MIFUMO_CARRIER = "locmem"
    return LocmemCarrier


@pytest.fixture
def make_account(db: None) -> Any:
    def make(name: str = "alice", balance: Decimal | int | str = "5000.00") -> Account:
        return account_create(name=name, balance=balance)

    return make


@pytest.fixture
def make_key(db: None) -> Any:
    def make(
        account: Account, permission: str = Permission.ADMIN, test: bool = False, **kw: Any
    ) -> IssuedKey:
        return api_key_create(
            account=account,
            name=kw.pop("name", "test key"),
            permission=permission,
            test=test,
            **kw,
        )

    return make


@pytest.fixture
def alice(make_account: Any) -> Account:
    return make_account("alice")


@pytest.fixture
def bob(make_account: Any) -> Account:
    return make_account("bob")


@pytest.fixture
def alice_key(alice: Account, make_key: Any) -> IssuedKey:
    return make_key(alice, Permission.ADMIN)


@pytest.fixture
def api(alice_key: IssuedKey) -> Api:
    """Alice's admin key."""
    return Api(alice_key.raw)


@pytest.fixture
def api_for(make_key: Any) -> Any:
    def make(account: Account, permission: str = Permission.ADMIN, test: bool = False) -> Api:
        return Api(make_key(account, permission, test).raw)

    return make


@pytest.fixture
def anon() -> Api:
    return Api(None)
