"""Webhooks and API keys against a real server: the verifier checks real deliveries to a real
local receiver and parses them into typed events; endpoints, deliveries, redelivery, secret
rotation and keys through the client."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from mifumo_client import InvalidCredentialsError, Mifumo, WebhookSignatureError, webhooks
from mifumo_client.models import NewApiKey, WebhookDeliveryDetail
from mifumo_client.webhooks import MessageEvent
from mifumo_server import Server

from tests.webhooks.receiver import Received, Receiver
from tests.workers import wait_until

pytestmark = pytest.mark.slow


def arrived(receiver: Receiver, path: str, event: str, count: int = 1) -> list[Received]:
    def matching() -> list[Received]:
        return [r for r in receiver.on(path) if r.header("X-Mifumo-Event") == event]

    wait_until(lambda: len(matching()) >= count, timeout=60, interval=0.1)
    return matching()


def test_endpoint_deliveries_verify_with_the_endpoint_secret_and_parse_into_typed_events(
    client: Mifumo, receiver: Receiver, api_key: str
) -> None:
    endpoint = client.webhooks.create(receiver.url_for("/endpoint"), description="Ofisi")
    assert endpoint.secret and endpoint.secret.startswith("whsec_")
    sent = client.sms.send("Habari", ["+255712345675"])

    (request,) = arrived(receiver, "/endpoint", "message.delivered")
    header = request.header("X-Mifumo-Signature")
    assert webhooks.verify(endpoint.secret, header, request.body)
    event = webhooks.construct_event(endpoint.secret, header, request.body)
    assert isinstance(event, MessageEvent)
    assert (event.event, event.message_id, event.status) == (
        "message.delivered",
        sent.message_id,
        "delivered",
    )
    assert event.event_id == request.header("X-Mifumo-Event-Id")
    assert isinstance(event.created_at, datetime) and event.created_at.tzinfo is not None
    assert [(r.phone, r.status) for r in event.recipients] == [("+255712345675", "delivered")]
    assert event.recipients[0].delivery_time is not None
    assert (event.metadata.sender_id, event.metadata.cost) == ("MIFUMO", Decimal("10.00"))
    assert request.header("Authorization") == f"Bearer {api_key}"

    tampered = request.body.replace(b"delivered", b"failed", 1)
    assert not webhooks.verify(endpoint.secret, header, tampered)
    assert not webhooks.verify("whsec_not_the_secret", header, request.body)
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        webhooks.construct_event(endpoint.secret, header, tampered)
    with pytest.raises(WebhookSignatureError, match="away from now"):
        webhooks.construct_event(endpoint.secret, header, request.body, tolerance=-1)


def test_a_message_webhook_url_verifies_with_the_account_signing_secret(
    client: Mifumo, receiver: Receiver
) -> None:
    secret = client.webhooks.signing_secret().secret
    sent = client.sms.send("Habari", ["+255712340001"], webhook_url=receiver.url_for("/own"))

    (failed,) = arrived(receiver, "/own", "message.failed")
    event = webhooks.construct_event(secret, failed.header("X-Mifumo-Signature"), failed.body)
    assert isinstance(event, MessageEvent) and event.message_id == sent.message_id
    assert [(r.status, r.delivery_time) for r in event.recipients] == [("failed", None)]

    rotated = client.webhooks.rotate_signing_secret(grace_period_seconds=0)
    assert rotated.secret != secret and rotated.secret_rotated_at is not None
    assert client.webhooks.signing_secret().secret == rotated.secret


def test_the_test_event_reaches_the_endpoint_and_verifies(
    client: Mifumo, receiver: Receiver
) -> None:
    endpoint = client.webhooks.create(receiver.url_for("/test"))
    delivery = client.webhooks.test(endpoint.id)
    assert isinstance(delivery, WebhookDeliveryDetail)
    assert (delivery.status, delivery.event, delivery.webhook_id) == (
        "succeeded",
        "message.test",
        endpoint.id,
    )
    assert [(a.number, a.succeeded, a.status_code) for a in delivery.attempt_log] == [
        (1, True, 200)
    ]
    assert delivery.payload["event"] == "message.test"

    (request,) = receiver.on("/test")
    event = webhooks.construct_event(
        endpoint.secret or "", request.header("X-Mifumo-Signature"), request.body
    )
    assert isinstance(event, MessageEvent) and event.event == "message.test"
    assert event.event_id == delivery.event_id


def test_during_a_rotation_deliveries_verify_with_the_old_and_the_new_secret(
    client: Mifumo, receiver: Receiver
) -> None:
    endpoint = client.webhooks.create(receiver.url_for("/rotating"))
    rotated = client.webhooks.rotate_secret(endpoint.id, grace_period_seconds=3600)
    assert rotated.secret and rotated.secret != endpoint.secret
    client.webhooks.test(endpoint.id)

    (request,) = receiver.on("/rotating")
    header = request.header("X-Mifumo-Signature") or ""
    assert header.count("v1=") == 2
    assert webhooks.verify(endpoint.secret or "", header, request.body)
    assert webhooks.verify(rotated.secret, header, request.body)
    assert webhooks.verify(["whsec_old_and_gone", rotated.secret], header, request.body)


def test_endpoints_and_deliveries_are_managed_through_the_client(
    client: Mifumo, receiver: Receiver
) -> None:
    endpoint = client.webhooks.create(
        receiver.url_for("/managed"), events=["message.delivered"], description="Ghala"
    )
    assert [e.id for e in client.webhooks.list()] == [endpoint.id]
    assert client.webhooks.get(endpoint.id).secret is None
    first = client.sms.send("Moja", ["+255712345675"])
    second = client.sms.send("Mbili", ["+255754000005"])
    arrived(receiver, "/managed", "message.delivered", count=2)

    pages = list(client.webhooks.deliveries(webhook_id=endpoint.id, page_size=1).pages())
    assert [len(page.items) for page in pages] == [1, 1]
    deliveries = list(client.webhooks.deliveries(webhook_id=endpoint.id, status="succeeded"))
    assert [d.message_id for d in deliveries] == [second.message_id, first.message_id]
    (mine,) = client.webhooks.deliveries(message_id=first.message_id)
    assert mine.webhook_id == endpoint.id and mine.attempts == 1
    with pytest.raises(ValueError, match="not both"):
        client.webhooks.deliveries(webhook_id=endpoint.id, message_id=first.message_id)

    detail = client.webhooks.delivery(mine.id, webhook_id=endpoint.id)
    assert detail.payload["message_id"] == first.message_id and len(detail.attempt_log) == 1
    assert client.webhooks.delivery(mine.id) == detail
    again = client.webhooks.redeliver(mine.id)
    assert again.redelivery is True and again.event_id == mine.event_id and again.id != mine.id
    (other,) = client.webhooks.deliveries(message_id=second.message_id)
    once_more = client.webhooks.redeliver(other.id, webhook_id=endpoint.id)
    assert once_more.event_id == other.event_id and once_more.webhook_id == endpoint.id
    copies = arrived(receiver, "/managed", "message.delivered", count=4)
    event_ids = [r.header("X-Mifumo-Event-Id") for r in copies]
    assert (event_ids.count(mine.event_id), event_ids.count(other.event_id)) == (2, 2)

    changed = client.webhooks.update(endpoint.id, active=False, description="Zamani")
    assert (changed.active, changed.description, changed.events) == (
        False,
        "Zamani",
        ["message.delivered"],
    )
    assert client.webhooks.delete(endpoint.id).deleted is True
    assert list(client.webhooks.list()) == []


def refused(server: Server, key: str) -> None:
    with Mifumo(key, server.url, max_retries=0) as client, pytest.raises(InvalidCredentialsError):
        client.balance()


def test_keys_are_listed_created_rotated_and_revoked(server: Server, client: Mifumo) -> None:
    made = client.keys.create("Duka la mtandaoni", permissions="write", test=True)
    assert isinstance(made, NewApiKey) and made.key.startswith("mif_test_")
    assert (made.mode, made.status, made.permissions) == ("test", "active", ["read", "write"])
    assert {k.id for k in client.keys.list()} >= {made.id}

    with Mifumo(made.key, server.url) as shop:
        assert shop.balance().currency == "TZS"
    # Rotating makes a new key (a new id) with the old one's name, permissions and mode.
    rotated = client.keys.rotate(made.id)
    assert rotated.id != made.id and rotated.key != made.key
    assert (rotated.name, rotated.mode) == (made.name, "test")
    assert rotated.permissions == made.permissions
    refused(server, made.key)
    listed = {k.id: k.status for k in client.keys.list()}
    assert (listed[made.id], listed[rotated.id]) == ("revoked", "active")
    revoked = client.keys.revoke(rotated.id)
    assert revoked.status == "revoked"
    refused(server, rotated.key)
