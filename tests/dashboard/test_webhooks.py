"""Webhook endpoints from the dashboard, through the webhooks app's services."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from integration.models import Account, AuditEvent
from tests.dashboard.support import dash
from tests.webhooks.receiver import Answer, Receiver
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local(settings: Any) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    settings.MIFUMO_WEBHOOK_TIMEOUT = 3


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def endpoint(alice: Account, receiver: Receiver) -> Endpoint:
    return endpoint_create(account=alice, url=receiver.url, description="orders")


def test_creating_an_endpoint(owner_client: Client, alice: Account, receiver: Receiver) -> None:
    response = owner_client.post(
        dash("webhooks/create/"),
        {"url": receiver.url, "events": ["message.delivered", "message.failed"]},
    )
    endpoint = Endpoint.objects.get()
    assert response.status_code == 302
    assert response["Location"] == dash(f"webhooks/{endpoint.pk}/")
    assert endpoint.account == alice and endpoint.events == ["message.delivered", "message.failed"]
    assert AuditEvent.objects.get(action="webhook.created").target == endpoint.pk


def test_an_unsafe_url_is_refused_on_the_form(owner_client: Client, settings: Any) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = False
    response = owner_client.post(
        dash("webhooks/create/"),
        {"url": "http://169.254.169.254/latest", "events": ["message.sent"]},
    )
    assert response.status_code == 400
    assert Endpoint.objects.count() == 0
    assert response.context["form"].errors


def test_an_endpoint_past_the_limit_is_refused_on_the_form(
    owner_client: Client, endpoint: Endpoint, settings: Any
) -> None:
    settings.MIFUMO_MAX_WEBHOOK_ENDPOINTS = 1
    response = owner_client.post(
        dash("webhooks/create/"), {"url": "http://127.0.0.1:9/more", "events": ["message.sent"]}
    )
    assert response.status_code == 400
    assert "the most it may have" in " ".join(response.context["form"].non_field_errors())
    assert list(Endpoint.objects.all()) == [endpoint]


def test_editing_events_and_disabling(owner_client: Client, endpoint: Endpoint) -> None:
    response = owner_client.post(
        dash(f"webhooks/{endpoint.pk}/edit/"),
        {"url": endpoint.url, "events": ["message.failed"], "description": "only failures"},
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.events == ["message.failed"] and not endpoint.active
    event = AuditEvent.objects.get(action="webhook.updated")
    assert event.details == {"events": ["message.failed"], "active": False}
    owner_client.post(dash(f"webhooks/{endpoint.pk}/toggle/"))
    endpoint.refresh_from_db()
    assert endpoint.active


def test_the_secret_is_revealed_on_demand_and_rotated(
    owner_client: Client, endpoint: Endpoint
) -> None:
    page = owner_client.get(dash(f"webhooks/{endpoint.pk}/")).content.decode()
    assert endpoint.secret not in page
    revealed = owner_client.post(dash(f"webhooks/{endpoint.pk}/secret/"))
    assert endpoint.secret in revealed.content.decode()
    assert "no-store" in revealed["Cache-Control"]
    old = endpoint.secret
    rotated = owner_client.post(
        dash(f"webhooks/{endpoint.pk}/rotate-secret/"), {"grace_seconds": "3600"}
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret in rotated.content.decode()
    assert endpoint.signing_secrets()[1] == old
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"webhook.secret_revealed", "webhook.secret_rotated"} <= actions
    assert old not in str(list(AuditEvent.objects.values_list("details", flat=True)))


def test_a_test_event_reaches_the_receiver(
    owner_client: Client, endpoint: Endpoint, receiver: Receiver
) -> None:
    receiver.then(Answer(headers={"Content-Type": "application/json"}, body=b'{"received":true}'))
    response = owner_client.post(dash(f"webhooks/{endpoint.pk}/test/"), follow=True)
    assert b"Test event delivered: HTTP 200" in response.content
    assert (
        len(receiver.requests) == 1
        and receiver.requests[0].headers["X-Mifumo-Event"] == "message.test"
    )
    delivery = Delivery.objects.get()
    assert delivery.status == "succeeded" and delivery.last_status_code == 200
    page = owner_client.get(dash(f"webhooks/{endpoint.pk}/")).content.decode()
    assert delivery.pk in page and "received" in page


def test_a_failed_test_event_says_why(owner_client: Client, alice: Account) -> None:
    dead = endpoint_create(account=alice, url="http://127.0.0.1:9/nobody")
    response = owner_client.post(dash(f"webhooks/{dead.pk}/test/"), follow=True)
    assert b"Test event not delivered" in response.content


def test_a_delivery_can_be_redelivered(
    owner_client: Client, endpoint: Endpoint, receiver: Receiver
) -> None:
    owner_client.post(dash(f"webhooks/{endpoint.pk}/test/"))
    first = Delivery.objects.get()
    detail = owner_client.get(dash(f"webhooks/deliveries/{first.pk}/"))
    assert b"message.test" in detail.content and b"Redeliver" in detail.content
    response = owner_client.post(dash(f"webhooks/deliveries/{first.pk}/redeliver/"))
    again = Delivery.objects.exclude(pk=first.pk).get()
    assert response["Location"] == dash(f"webhooks/deliveries/{again.pk}/")
    assert again.redelivery and again.event_id == first.event_id
    assert AuditEvent.objects.filter(action="webhook.redelivered").count() == 1


def test_deleting_an_endpoint(owner_client: Client, endpoint: Endpoint) -> None:
    response = owner_client.post(dash(f"webhooks/{endpoint.pk}/delete/"))
    assert response.status_code == 302 and not Endpoint.objects.exists()
    assert AuditEvent.objects.get(action="webhook.deleted").details == {"url": endpoint.url}


def test_the_account_signing_secret_is_revealed_and_rotated(owner_client: Client) -> None:
    first = owner_client.post(dash("webhooks/signing-secret/")).context["account_secret"]
    assert first.startswith("whsec_")
    second = owner_client.post(
        dash("webhooks/signing-secret/rotate/"), {"grace_seconds": "0"}
    ).context["account_secret"]
    assert second.startswith("whsec_") and second != first


@pytest.mark.parametrize(
    "path", ["edit/", "toggle/", "delete/", "secret/", "rotate-secret/", "test/"]
)
def test_a_member_can_look_but_not_change(
    member_client: Client, endpoint: Endpoint, receiver: Receiver, path: str
) -> None:
    page = member_client.get(dash(f"webhooks/{endpoint.pk}/"))
    assert page.status_code == 200 and b"Send a test event" not in page.content
    assert endpoint.secret not in page.content.decode()
    response = member_client.post(
        dash(f"webhooks/{endpoint.pk}/{path}"), {"url": "http://127.0.0.1:9/", "events": []}
    )
    assert response.status_code == 403
    assert endpoint.secret not in response.content.decode()
    assert Endpoint.objects.get().url == endpoint.url
    assert receiver.requests == []


def test_a_member_cannot_create_or_reveal_account_secrets(member_client: Client) -> None:
    assert b'id="webhook-form"' not in member_client.get(dash("webhooks/")).content
    for path in ["webhooks/create/", "webhooks/signing-secret/", "webhooks/signing-secret/rotate/"]:
        assert member_client.post(dash(path), {"url": "http://127.0.0.1:9/"}).status_code == 403
    assert not Endpoint.objects.exists()


def test_a_test_endpoint_and_the_test_traffic_secret(owner_client: Client) -> None:
    response = owner_client.post(
        dash("webhooks/create/"),
        {"url": "https://hooks.example.com/t", "events": ["message.sent"], "mode": "test"},
    )
    assert response.status_code == 302
    assert Endpoint.objects.get().is_test
    assert b"test traffic" in owner_client.get(response["Location"]).content

    live = owner_client.post(dash("webhooks/signing-secret/")).context["account_secret"]
    test = owner_client.post(dash("webhooks/signing-secret/"), {"mode": "test"})
    assert test.context["account_secret"] != live
    rotated = owner_client.post(
        dash("webhooks/signing-secret/rotate/"), {"grace_seconds": "0", "mode": "test"}
    ).context["account_secret"]
    assert rotated not in (live, test.context["account_secret"])
    again = owner_client.post(dash("webhooks/signing-secret/")).context["account_secret"]
    assert again == live
    targets = AuditEvent.objects.filter(action="signing_secret.rotated").values_list(
        "target", flat=True
    )
    assert list(targets) == ["account signing secret (test)"]
