"""API keys, webhook endpoints and sender IDs are listed a page at a time, as every list is:
``page`` and ``per_page`` (default 50, at most 100) in, ``pagination`` out; a walk over
the pages sees each item once."""

from __future__ import annotations

from typing import Any

import pytest

from integration.models import Account
from sms.models import SenderId
from tests.helpers import assert_envelope
from webhooks.endpoints import endpoint_create

pytestmark = pytest.mark.django_db


def walk(api: Any, path: str, key: str, per_page: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, a page at a time, and the total the pages gave."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        data = assert_envelope(api.get(path, {"page": page, "per_page": per_page}), 200)["data"]
        assert data["pagination"]["page"] == page and data["pagination"]["per_page"] == per_page
        assert len(data[key]) <= per_page
        items += data[key]
        if page >= data["pagination"]["pages"]:
            return items, data["pagination"]["total"]
        page += 1


def test_keys_are_listed_newest_first_a_page_at_a_time(api: Any, alice: Account, make_key: Any):
    for n in range(6):
        make_key(alice, name=f"key {n}")
    first = assert_envelope(api.get("keys/"), 200)["data"]
    assert first["pagination"] == {"page": 1, "per_page": 50, "total": 7, "pages": 1}
    keys, total = walk(api, "keys/", "keys", per_page=3)
    assert total == 7 and [k["id"] for k in keys] == [k["id"] for k in first["keys"]]
    assert len({k["id"] for k in keys}) == 7
    assert [k["name"] for k in keys[:6]] == [f"key {n}" for n in reversed(range(6))]


def test_webhooks_are_listed_oldest_first_a_page_at_a_time(
    api: Any, alice: Account, bob: Account, settings: Any
):
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    urls = [f"http://127.0.0.1:9/hook/{n}" for n in range(5)]
    for url in urls:
        endpoint_create(account=alice, url=url)
    endpoint_create(account=bob, url="http://127.0.0.1:9/bob")
    endpoints, total = walk(api, "webhooks/", "webhooks", per_page=2)
    assert total == 5 and [e["url"] for e in endpoints] == urls


def test_sender_ids_put_the_default_first_and_page_the_rest(api: Any, alice: Account, bob: Account):
    for value in ("ZETA", "ALPHA", "MANGO", "BETA"):
        SenderId.objects.create(account=alice, value=value)
    SenderId.objects.create(account=bob, value="BOBCO")
    first = assert_envelope(api.get("sms/sender-ids/", {"per_page": 2}), 200)["data"]
    assert [r["sender_id"] for r in first["sender_ids"]] == ["MIFUMO", "ALPHA"]
    assert first["pagination"] == {"page": 1, "per_page": 2, "total": 5, "pages": 3}
    for per_page in (1, 2, 3, 5, 100):
        rows, total = walk(api, "sms/sender-ids/", "sender_ids", per_page=per_page)
        assert total == 5
        assert [r["sender_id"] for r in rows] == ["MIFUMO", "ALPHA", "BETA", "MANGO", "ZETA"]
    past = assert_envelope(api.get("sms/sender-ids/", {"page": 4, "per_page": 2}), 200)["data"]
    assert past["sender_ids"] == [] and past["pagination"]["total"] == 5


@pytest.mark.parametrize("path", ["keys/", "webhooks/", "sms/sender-ids/"])
@pytest.mark.parametrize(
    "query", [{"per_page": 0}, {"per_page": 101}, {"page": 0}, {"page": "two"}]
)
def test_a_bad_page_is_a_validation_error(api: Any, path: str, query: dict[str, Any]):
    body = assert_envelope(api.get(path, query), 400, "VALIDATION_ERROR")
    assert list(body["details"]) == list(query)
