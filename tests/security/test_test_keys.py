"""A test key manages test keys only and sees only test traffic: it cannot mint or touch a
live key, reach live messages, deliveries or endpoints, or receive live events and keys.

Contacts, segments, message templates, sender IDs and the balance are the account's, shared
by both modes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import URLPattern
from django.utils import timezone

from integration.models import Account, ApiKey, LedgerEntry
from integration.services import IssuedKey
from sms.models import Message, Recipient
from tests.helpers import Api, assert_envelope
from tests.security import seed
from tests.security.test_isolation import ROUTES, _methods, _path, _snapshot, _walk, id_routes
from tests.webhooks.conftest import change_status, make_message
from tests.webhooks.receiver import Receiver
from webhooks import verify_example
from webhooks.delivery import delivery_attempt
from webhooks.endpoints import account_signing_secret_ensure, endpoint_create
from webhooks.models import Delivery, Endpoint, Event

pytestmark = pytest.mark.django_db

# Every route under the API prefix, by what a test key may do there:
#   "test"   - only test objects exist for it (others: 404, filtered from lists)
#   "shared" - the account's data, the same for both modes
SCOPE: dict[str, str] = {
    "sms/send/": "test",
    "sms/status/<str:message_id>/": "test",
    "sms/delivery-reports/": "test",
    "sms/balance/": "shared",
    "sms/messages/": "test",
    "sms/messages/<str:message_id>/": "test",
    "sms/sender-ids/": "shared",
    "sms/sender-ids/request/": "shared",
    "sms/<str:message_id>/cancel/": "test",
    "sms/inbound/": "test",
    "sms/inbound/simulate/": "test",
    "sms/inbound/<str:inbound_id>/": "test",
    "sms/templates/": "shared",
    "sms/templates/create/": "shared",
    "sms/templates/<str:template_id>/": "shared",
    "keys/": "test",
    "keys/create/": "test",
    "keys/<int:key_id>/revoke/": "test",
    "keys/<int:key_id>/rotate/": "test",
    "contacts/create/": "shared",
    "contacts/search/": "shared",
    "contacts/import/": "shared",
    "contacts/export/": "shared",
    "contacts/segments/": "shared",
    "contacts/segments/create/": "shared",
    "contacts/segments/<str:segment_id>/": "shared",
    "contacts/segments/<str:segment_id>/contacts/": "shared",
    "contacts/<str:contact_id>/": "shared",
    "contacts/<str:contact_id>/opt-out/": "shared",
    "contacts/<str:contact_id>/opt-in/": "shared",
    "webhooks/": "test",
    "webhooks/deliveries/": "test",
    "webhooks/deliveries/<str:delivery_id>/": "test",
    "webhooks/deliveries/<str:delivery_id>/redeliver/": "test",
    "webhooks/signing-secret/": "test",
    "webhooks/signing-secret/rotate/": "test",
    "webhooks/<str:webhook_id>/": "test",
    "webhooks/<str:webhook_id>/test/": "test",
    "webhooks/<str:webhook_id>/rotate-secret/": "test",
    "webhooks/<str:webhook_id>/deliveries/": "test",
    "webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/": "test",
    "webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/redeliver/": "test",
    "schema/": "shared",
}


def _api_routes() -> set[str]:
    from django.conf import settings
    from django.urls import get_resolver

    prefix = settings.MIFUMO_API_PREFIX.lstrip("/")
    return {
        route.removeprefix(prefix)
        for route, pattern in _walk(get_resolver().url_patterns)
        if route.startswith(prefix) and isinstance(pattern, URLPattern) and not route.endswith("$")
    }


@pytest.fixture
def sandbox(alice: Account, make_key: Any) -> IssuedKey:
    Account.objects.filter(pk=alice.pk).update(api_per_hour=100_000, contacts_per_hour=100_000)
    return make_key(alice, test=True, name="sandbox")


@pytest.fixture
def test_api(sandbox: IssuedKey) -> Api:
    return Api(sandbox.raw)


def test_every_route_has_a_test_key_scope() -> None:
    assert _api_routes() == set(SCOPE)


def test_a_test_key_cannot_create_a_live_key(alice: Account, test_api: Api) -> None:
    before = ApiKey.objects.count()
    body = assert_envelope(
        test_api.post("keys/create/", {"name": "escalate", "permissions": "admin", "test": False}),
        403,
        "PERMISSION_DENIED",
    )
    assert "test" in body["message"]
    assert ApiKey.objects.count() == before
    made = assert_envelope(test_api.post("keys/create/", {"name": "more"}), 201)["data"]
    assert made["mode"] == "test" and made["key"].startswith("mif_test_")


def test_a_test_key_lists_only_test_keys(alice: Account, test_api: Api, api: Api) -> None:
    listed = assert_envelope(test_api.get("keys/"), 200)["data"]["keys"]
    assert listed and {k["mode"] for k in listed} == {"test"}
    everything = assert_envelope(api.get("keys/"), 200)["data"]["keys"]
    assert {k["mode"] for k in everything} == {"live", "test"}


@pytest.mark.parametrize("route", sorted(r for r in ROUTES if SCOPE[r] == "test"))
def test_a_test_key_cannot_reach_live_objects(
    route: str, alice: Account, test_api: Api, sandbox: IssuedKey
) -> None:
    owned = seed(alice)  # live objects: message, endpoint, delivery, key
    path = _path(route, ROUTES[route], owned)
    before = _snapshot(alice, owned)
    balance = Account.objects.get(pk=alice.pk).balance
    for method in _methods(id_routes()[route]):
        call = getattr(test_api.client, method)
        response = (
            call(path)
            if method in {"get", "delete"}
            else call(path, {"name": "mine", "active": False}, format="json")
        )
        assert_envelope(response, 404, "NOT_FOUND")
    assert _snapshot(alice, owned) == before
    assert Account.objects.get(pk=alice.pk).balance == balance


def _live_and_test_traffic(alice: Account, sandbox: IssuedKey, live: IssuedKey) -> None:
    seed(alice)  # a live message, endpoint and delivery
    make_message(alice, api_key=live.api_key)
    sandboxed = make_message(alice, api_key=sandbox.api_key)
    Message.objects.filter(pk=sandboxed.pk).update(is_test=True)
    test_endpoint = endpoint_create(account=alice, url="https://hooks.example.com/t", test=True)
    event = Event.objects.create(account=alice, type="message.sent", body="{}", is_test=True)
    Delivery.objects.create(
        event=event, account=alice, endpoint=test_endpoint, url=test_endpoint.url
    )


def test_test_key_lists_hold_only_test_traffic(
    alice: Account, sandbox: IssuedKey, alice_key: IssuedKey, test_api: Api, api: Api
) -> None:
    _live_and_test_traffic(alice, sandbox, alice_key)
    test_messages = assert_envelope(test_api.get("sms/messages/"), 200)["data"]["messages"]
    all_messages = assert_envelope(api.get("sms/messages/"), 200)["data"]["messages"]
    assert len(test_messages) == 1 and len(all_messages) == 3
    reports = assert_envelope(test_api.get("sms/delivery-reports/"), 200)["data"]["reports"]
    assert [r["message_id"] for r in reports] == [test_messages[0]["message_id"]]

    endpoints = assert_envelope(test_api.get("webhooks/"), 200)["data"]["webhooks"]
    assert [e["mode"] for e in endpoints] == ["test"]
    assert {e["mode"] for e in assert_envelope(api.get("webhooks/"), 200)["data"]["webhooks"]} == {
        "live",
        "test",
    }
    deliveries = assert_envelope(test_api.get("webhooks/deliveries/"), 200)["data"]
    assert deliveries["pagination"]["total"] == 1
    assert deliveries["deliveries"][0]["webhook_id"] == endpoints[0]["id"]


def test_a_test_key_cannot_cancel_a_live_scheduled_message(
    alice: Account, test_api: Api, api: Api
) -> None:
    when = (timezone.now() + timedelta(hours=1)).isoformat()
    sent = api.post(
        "sms/send/",
        {"message": "Habari", "recipients": ["+255712345678"], "schedule_time": when},
    )
    message_id = assert_envelope(sent, 200)["data"]["message_id"]
    refunds = LedgerEntry.objects.filter(kind="refund").count()
    assert_envelope(test_api.post(f"sms/{message_id}/cancel/"), 404, "NOT_FOUND")
    assert Recipient.objects.get(message_id=message_id).status == "scheduled"
    assert LedgerEntry.objects.filter(kind="refund").count() == refunds


def test_endpoints_made_by_a_test_key_are_test_endpoints(test_api: Api) -> None:
    refused = test_api.post("webhooks/", {"url": "https://hooks.example.com/x", "test": False})
    assert_envelope(refused, 403, "PERMISSION_DENIED")
    assert not Endpoint.objects.exists()
    made = assert_envelope(test_api.post("webhooks/", {"url": "https://hooks.example.com/x"}), 201)
    assert made["data"]["mode"] == "test"
    assert Endpoint.objects.get().is_test


def test_events_go_only_to_endpoints_of_their_own_mode(
    alice: Account, sandbox: IssuedKey, alice_key: IssuedKey, receiver: Receiver, settings: Any
) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    endpoint_create(account=alice, url=receiver.url_for("/live"))
    endpoint_create(account=alice, url=receiver.url_for("/test"), test=True)
    live = make_message(alice, api_key=alice_key.api_key)
    sandboxed = make_message(alice, api_key=sandbox.api_key)
    sandboxed.is_test = True
    sandboxed.save(update_fields=["is_test"])

    change_status(live, Recipient.Status.SENT)
    change_status(sandboxed, Recipient.Status.SENT)
    for delivery_id in Delivery.objects.values_list("pk", flat=True):
        delivery_attempt(delivery_id=delivery_id)

    [to_live] = receiver.on("/live")
    [to_test] = receiver.on("/test")
    assert to_live.json()["message_id"] == live.pk
    assert to_live.header("Authorization") == f"Bearer {alice_key.raw}"
    assert to_test.json()["message_id"] == sandboxed.pk
    assert to_test.header("Authorization") == f"Bearer {sandbox.raw}"


def test_a_live_key_is_never_sent_to_a_test_endpoint(
    alice: Account, api: Api, alice_key: IssuedKey, receiver: Receiver, settings: Any
) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    endpoint = endpoint_create(account=alice, url=receiver.url, test=True)
    assert_envelope(api.post(f"webhooks/{endpoint.pk}/test/"), 200)
    [request] = receiver.requests
    assert request.header("Authorization") is None
    assert alice_key.raw not in repr(request.headers)


def test_test_traffic_is_signed_with_a_secret_of_its_own(
    alice: Account, sandbox: IssuedKey, test_api: Api, api: Api, receiver: Receiver, settings: Any
) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    live_secret = assert_envelope(api.get("webhooks/signing-secret/"), 200)["data"]["secret"]
    test_secret = assert_envelope(test_api.get("webhooks/signing-secret/"), 200)["data"]["secret"]
    assert live_secret != test_secret
    assert live_secret == account_signing_secret_ensure(account_id=alice.pk).secret

    message = make_message(alice, api_key=sandbox.api_key, webhook_url=receiver.url)
    message.is_test = True
    message.save(update_fields=["is_test"])
    change_status(message, Recipient.Status.SENT)
    delivery_attempt(delivery_id=Delivery.objects.get().pk)
    [request] = receiver.requests
    signature = request.header("X-Mifumo-Signature") or ""
    assert verify_example.verify(test_secret, signature, request.body)
    assert not verify_example.verify(live_secret, signature, request.body)

    # Rotating the test secret leaves the live one alone.
    assert_envelope(
        test_api.post("webhooks/signing-secret/rotate/", {"grace_period_seconds": 0}), 200
    )
    assert assert_envelope(api.get("webhooks/signing-secret/"), 200)["data"]["secret"] == (
        live_secret
    )
