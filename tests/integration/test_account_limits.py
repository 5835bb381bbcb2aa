"""What an account may accumulate: webhook endpoints (each multiplies every message's
deliveries) and sender ID requests awaiting an operator. One past the limit is a 409
``CONFLICT`` that creates nothing; requests made at the same moment count one after the
other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from integration.models import Account
from mifumo.errors import DomainError, ErrorCode
from sms.models import SenderId
from sms.sender_ids import sender_id_request, sender_id_review
from tests.contacts.threads import run_together
from tests.helpers import assert_envelope
from webhooks.endpoints import endpoint_create
from webhooks.models import Endpoint


@pytest.fixture(autouse=True)
def _limits(settings: Any) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    settings.MIFUMO_MAX_WEBHOOK_ENDPOINTS = 3
    settings.MIFUMO_MAX_PENDING_SENDER_IDS = 2


def hook(n: int) -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:9/hook/{n}"}


@pytest.mark.django_db
def test_one_endpoint_past_the_limit_is_refused_until_one_is_deleted(
    api: Any, alice: Account, bob: Account
) -> None:
    made = [assert_envelope(api.post("webhooks/", hook(n)), 201)["data"]["id"] for n in range(2)]
    made.append(
        assert_envelope(api.post("webhooks/", {**hook(2), "test": True}), 201)["data"]["id"]
    )
    body = assert_envelope(api.post("webhooks/", hook(3)), 409, "CONFLICT")
    assert body["details"] == {"limit": 3, "count": 3}
    assert "webhook endpoints" in body["message"]
    assert Endpoint.objects.filter(account=alice).count() == 3
    # Another account's endpoints are its own.
    endpoint_create(account=bob, url="http://127.0.0.1:9/bob")
    assert_envelope(api.delete(f"webhooks/{made[0]}/"), 200)
    assert_envelope(api.post("webhooks/", hook(3)), 201)


@pytest.mark.django_db
def test_sender_id_requests_past_the_limit_wait_for_a_review(api: Any, alice: Account) -> None:
    for value in ("DUKA", "SOKO"):
        assert_envelope(api.post("sms/sender-ids/request/", {"sender_id": value}), 201)
    biashara = {"sender_id": "BIASHARA"}
    body = assert_envelope(api.post("sms/sender-ids/request/", biashara), 409, "CONFLICT")
    assert body["details"] == {"limit": 2, "pending": 2}
    # Asking again for one already requested still says so.
    again = assert_envelope(
        api.post("sms/sender-ids/request/", {"sender_id": "DUKA"}), 409, "CONFLICT"
    )
    assert again["details"] == {"sender_id": "DUKA", "status": "pending"}
    assert SenderId.objects.filter(account=alice).count() == 2
    sender_id_review(account=alice, value="DUKA", approve=True)
    assert_envelope(api.post("sms/sender-ids/request/", {"sender_id": "BIASHARA"}), 201)


def at_once(make: Callable[[int], object], count: int) -> list[object]:
    """Run ``make(0..count-1)`` in threads released together; what each returned, or the
    refusal it raised."""

    def outcome(n: int) -> object:
        try:
            return make(n)
        except DomainError as exc:
            return exc

    return run_together(count, outcome)


def refused(results: list[object]) -> list[DomainError]:
    errors = [r for r in results if isinstance(r, DomainError)]
    assert all(e.code == ErrorCode.CONFLICT for e in errors)
    return errors


@pytest.mark.django_db(transaction=True)
def test_endpoints_created_at_the_same_moment_stop_at_the_limit(alice: Account) -> None:
    results = at_once(lambda n: endpoint_create(account=alice, url=f"http://127.0.0.1:9/{n}"), 6)
    assert len(refused(results)) == 3
    assert Endpoint.objects.filter(account=alice).count() == 3


@pytest.mark.django_db(transaction=True)
def test_sender_ids_requested_at_the_same_moment_stop_at_the_limit(alice: Account) -> None:
    results = at_once(lambda n: sender_id_request(account=alice, value=f"BRAND{n}"), 5)
    assert len(refused(results)) == 3
    assert SenderId.objects.filter(account=alice, status=SenderId.Status.PENDING).count() == 2
