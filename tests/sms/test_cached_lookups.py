"""Approved sender IDs and price rules kept per process within API requests, validated by
cache versions read with the rate limits (mifumo.local_cache)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integration.models import Account
from integration.versions import account_version
from mifumo import local_cache
from sms import pricing
from sms.models import PriceRule, SenderId
from sms.sender_ids import APPROVED, sender_id_is_approved, sender_id_review
from tests.helpers import Api, assert_envelope

SEND = {"message": "Habari", "recipients": ["+255712345678"]}


@pytest.fixture(autouse=True)
def _empty_caches() -> Any:
    APPROVED.clear()
    yield
    APPROVED.clear()


def send(api: Api, **body: Any) -> Any:
    return api.post("sms/send/", {**SEND, **body})


def table_queries(queries: CaptureQueriesContext, table: str) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if f'"{table}"' in q["sql"]]


def bump_from_elsewhere(name: str) -> None:
    client = caches["default"]._cache.get_client(write=True)  # type: ignore[attr-defined]
    client.incr(local_cache.redis_key(name))


@pytest.mark.django_db
def test_an_approved_sender_id_is_checked_without_a_query(api: Api, alice: Account) -> None:
    sender_id_review(account=alice, value="ACME", approve=True)
    for _ in range(3):
        assert_envelope(send(api, sender_id="ACME"), 200)
    with CaptureQueriesContext(connection) as queries:
        assert_envelope(send(api, sender_id="ACME"), 200)
    assert not table_queries(queries, SenderId._meta.db_table)


@pytest.mark.django_db
def test_approval_and_rejection_are_seen_on_the_next_send(api: Api, alice: Account) -> None:
    for _ in range(3):
        assert_envelope(send(api, sender_id="ACME"), 400, "INVALID_SENDER_ID")
    sender_id_review(account=alice, value="ACME", approve=True)
    assert_envelope(send(api, sender_id="ACME"), 200)
    assert_envelope(send(api, sender_id="ACME"), 200)
    sender_id_review(account=alice, value="ACME", approve=False, note="no")
    assert_envelope(send(api, sender_id="ACME"), 400, "INVALID_SENDER_ID")


@pytest.mark.django_db
def test_a_sender_id_change_from_elsewhere_is_seen(api: Api, alice: Account) -> None:
    sender_id_review(account=alice, value="ACME", approve=True)
    for _ in range(3):
        assert_envelope(send(api, sender_id="ACME"), 200)
    SenderId.objects.filter(account=alice, value="ACME").update(status=SenderId.Status.REJECTED)
    assert_envelope(send(api, sender_id="ACME"), 200)  # unannounced: not known yet
    bump_from_elsewhere(account_version(alice.pk))
    assert_envelope(send(api, sender_id="ACME"), 400, "INVALID_SENDER_ID")


@pytest.mark.django_db
def test_outside_a_request_sender_ids_come_from_the_database(alice: Account) -> None:
    sender_id_review(account=alice, value="ACME", approve=True)
    SenderId.objects.filter(account=alice, value="ACME").update(status=SenderId.Status.REJECTED)
    with CaptureQueriesContext(connection) as queries:
        assert not sender_id_is_approved(account=alice, value="ACME")
    assert table_queries(queries, SenderId._meta.db_table)
    assert len(APPROVED) == 0


@pytest.mark.django_db
def test_a_cached_send_reads_no_price_rule(api: Api) -> None:
    for _ in range(3):
        assert_envelope(send(api), 200)
    with CaptureQueriesContext(connection) as queries:
        assert_envelope(send(api), 200)
    assert not table_queries(queries, PriceRule._meta.db_table)


@pytest.mark.django_db
def test_a_price_change_is_seen_on_the_next_send(api: Api) -> None:
    for _ in range(3):
        assert assert_envelope(send(api), 200)["data"]["cost"] == 10.0
    rule = PriceRule.objects.get(country_code="255", prefix="")
    rule.price_per_segment = Decimal("12.50")
    rule.save()
    assert assert_envelope(send(api), 200)["data"]["cost"] == 12.5
    rule.delete()
    assert_envelope(send(api), 400, "UNSUPPORTED_DESTINATION")


@pytest.mark.django_db
def test_a_price_change_from_elsewhere_is_seen(api: Api) -> None:
    for _ in range(3):
        assert assert_envelope(send(api), 200)["data"]["cost"] == 10.0
    PriceRule.objects.filter(country_code="255", prefix="").update(price_per_segment="11.00")
    assert assert_envelope(send(api), 200)["data"]["cost"] == 10.0  # unannounced
    bump_from_elsewhere(pricing.VERSION)
    assert assert_envelope(send(api), 200)["data"]["cost"] == 11.0
