"""A real Mifumo for the client's tests.

The web server and a Celery worker run on the test database and the tests' Redis, started once per
module the way tests/reliability starts its stack; every test makes its own account and keys
through the server's services (committed, so the server sees them) and talks to the server
only through the client.

The tests never flush the database: the server keeps running between them and would hold
locks a TRUNCATE waits for (a deadlock). Every test has an account of its own and asks only
about that account, so what earlier tests left behind cannot change an answer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connection
from django.test.utils import setup_databases, teardown_databases
from mifumo_client import AsyncMifumo, Mifumo
from mifumo_server import Server, mifumo_server

from integration.models import Account
from integration.ratelimit import _OVERRIDE_FIELD, _window, account_rate
from integration.services import account_create, api_key_create
from sms.models import PriceRule
from tests.webhooks.receiver import Receiver
from tests.workers import database_url


@pytest.fixture(scope="module")
def server(test_database: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The web server (two workers) and a Celery worker on every queue, for the whole module."""
    workdir = tmp_path_factory.mktemp("server")
    with mifumo_server(workdir, database_url(), os.environ["REDIS_URL"]) as running:
        yield running


@pytest.fixture(scope="session")
def test_database(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The test database. pytest-django makes it only for a session with a test that asks
    for ``db`` or ``transactional_db``; these tests ask for neither when run on their own."""
    if connection.settings_dict["NAME"].startswith("test_"):
        yield
        return
    with django_db_blocker.unblock():
        made = setup_databases(
            verbosity=0, interactive=False, aliases=dict.fromkeys([DEFAULT_DB_ALIAS])
        )
    yield
    with django_db_blocker.unblock():
        teardown_databases(made, verbosity=0)


@pytest.fixture
def committed_db(test_database: None, django_db_blocker: Any) -> Iterator[None]:
    """Database access outside any test transaction, with the price rule every installation
    starts with (a flush by an earlier test may have removed it)."""
    with django_db_blocker.unblock():
        PriceRule.objects.get_or_create(
            country_code="255", prefix="", defaults={"price_per_segment": Decimal("10.00")}
        )
        yield


@pytest.fixture
def make_account(committed_db: None) -> Callable[..., Account]:
    def make(balance: Decimal | str = "5000.00", **limits: int) -> Account:
        account = account_create(name=f"client-{uuid.uuid4().hex[:12]}", balance=balance)
        if limits:
            for name, value in limits.items():
                setattr(account, name, value)
            account.save(update_fields=list(limits))
        return account

    return make


@pytest.fixture
def make_limited_account(make_account: Callable[..., Account]) -> Callable[..., Account]:
    """An account with the given limits (``sms_per_minute=1``...) whose limited windows all
    have between ``left[0]`` and ``left[1]`` seconds to go. Windows are fixed per account,
    offset by its id: a test whose requests must share one window asks for one that does not
    end while they run, a test that waits one out for one that ends soon."""

    def make(left: tuple[int, int] = (10, 10**6), **limits: int) -> Account:
        buckets = {field: bucket for bucket, field in _OVERRIDE_FIELD.items()}
        for _ in range(500):
            account = make_account(**limits)
            windows = [
                _window(f"{bucket}:account:{account.pk}", account_rate(account, bucket)[1])
                for bucket in (buckets[field] for field in limits)
            ]
            if all(left[0] <= seconds <= left[1] for _end, seconds in windows):
                return account
        raise AssertionError(f"no account had its windows end in {left[0]}-{left[1]} s")

    return make


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account()


@pytest.fixture
def make_key(committed_db: None) -> Callable[..., str]:
    def make(account: Account, permission: str = "admin", *, test: bool = False) -> str:
        return api_key_create(
            account=account, name=f"client {permission}", permission=permission, test=test
        ).raw

    return make


@pytest.fixture
def api_key(account: Account, make_key: Callable[..., str]) -> str:
    return make_key(account)


@pytest.fixture
def client(server: Server, api_key: str) -> Iterator[Mifumo]:
    with Mifumo(api_key, server.url) as mifumo:
        yield mifumo


@pytest.fixture
def async_client(server: Server, api_key: str) -> AsyncMifumo:
    """Use it inside ``asyncio.run``: its connections belong to the loop that first uses them."""
    return AsyncMifumo(api_key, server.url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()
