"""The webhook management API: CRUD, validation, isolation, permissions, deliveries."""

from __future__ import annotations

import pytest

from integration.models import Permission
from sms.models import Recipient
from tests.helpers import assert_envelope
from tests.webhooks.conftest import change_status, make_message
from tests.webhooks.receiver import Answer
from webhooks import verify_example
from webhooks.delivery import delivery_attempt
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db

ALL_EVENTS = [
    "message.sent",
    "message.delivered",
    "message.failed",
    "account.low_balance",
    "message.received",
    "contact.opted_out",
    "contact.opted_in",
]


def create(api, **fields):
    body = {"url": "http://127.0.0.1:9/hook", **fields}
    return assert_envelope(api.post("webhooks/", body), 201)["data"]


def test_create_answers_201_with_the_secret_once(api):
    data = create(api, description="CRM")
    assert data["id"].startswith("whk_")
    assert data["url"] == "http://127.0.0.1:9/hook"
    assert data["events"] == ALL_EVENTS
    assert data["active"] is True
    assert data["description"] == "CRM"
    assert data["secret"].startswith("whsec_")
    assert data["created_at"].endswith("Z")

    listed = assert_envelope(api.get("webhooks/"), 200)["data"]["webhooks"]
    assert [w["id"] for w in listed] == [data["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in assert_envelope(api.get(f"webhooks/{data['id']}/"), 200)["data"]
    # Encrypted at rest.
    assert data["secret"] not in Endpoint.objects.get().secret_encrypted


def test_create_with_a_subset_of_events(api):
    data = create(api, events=["message.failed", "message.delivered", "message.failed"])
    assert data["events"] == ["message.delivered", "message.failed"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": ""}, "url"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "http://example.com/\r\nX: 1"}, "url"),
        ({"url": "http://127.0.0.1:9/", "events": ["message.read"]}, "events"),
        ({"url": "http://127.0.0.1:9/", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/", "events": "message.sent"}, "events"),
        ({"url": "http://127.0.0.1:9/", "active": "maybe"}, "active"),
        ({"url": "http://127.0.0.1:9/", "description": "x" * 256}, "description"),
    ],
)
def test_create_validation_errors(api, body, field):
    response = assert_envelope(api.post("webhooks/", body), 400, "VALIDATION_ERROR")
    assert field in response["details"]
    assert not Endpoint.objects.exists()


def test_patch_and_delete(api):
    webhook = create(api)
    path = f"webhooks/{webhook['id']}/"
    data = assert_envelope(
        api.patch(
            path,
            {
                "url": "http://127.0.0.1:9/v2",
                "events": ["message.delivered"],
                "active": False,
                "description": "paused",
            },
        ),
        200,
    )["data"]
    assert data["url"] == "http://127.0.0.1:9/v2"
    assert data["events"] == ["message.delivered"]
    assert data["active"] is False
    assert data["description"] == "paused"
    assert "secret" not in data
    assert_envelope(api.patch(path, {"url": "gopher://x/"}), 400, "VALIDATION_ERROR")

    deleted = assert_envelope(api.delete(path), 200)["data"]
    assert deleted == {"id": webhook["id"], "deleted": True}
    assert_envelope(api.get(path), 404, "NOT_FOUND")
    assert_envelope(api.delete(path), 404, "NOT_FOUND")


def test_reactivating_clears_the_disabled_reason(api, alice):
    webhook = create(api)
    Endpoint.objects.filter(pk=webhook["id"]).update(active=False, disabled_reason="410 Gone")
    data = assert_envelope(api.patch(f"webhooks/{webhook['id']}/", {"active": True}), 200)["data"]
    assert data["active"] is True
    assert data["disabled_reason"] is None


def test_unknown_ids_are_404(api):
    assert_envelope(api.get("webhooks/whk_01J000000000000000000000/"), 404, "NOT_FOUND")
    assert_envelope(api.get("webhooks/deliveries/dlv_nope/"), 404, "NOT_FOUND")


def test_another_accounts_webhooks_are_404(api, alice, bob, api_for):
    webhook = create(api)
    change_status(make_message(alice, webhook_url="http://127.0.0.1:9/m"), Recipient.Status.SENT)
    delivery = Delivery.objects.get(endpoint_id=webhook["id"])
    other = Delivery.objects.get(endpoint=None)
    bob_api = api_for(bob)
    base = f"webhooks/{webhook['id']}/"
    assert_envelope(bob_api.get(base), 404, "NOT_FOUND")
    assert_envelope(bob_api.patch(base, {"active": False}), 404, "NOT_FOUND")
    assert_envelope(bob_api.delete(base), 404, "NOT_FOUND")
    assert_envelope(bob_api.post(f"{base}test/"), 404, "NOT_FOUND")
    assert_envelope(bob_api.post(f"{base}rotate-secret/"), 404, "NOT_FOUND")
    assert_envelope(bob_api.get(f"{base}deliveries/"), 404, "NOT_FOUND")
    assert_envelope(bob_api.get(f"{base}deliveries/{delivery.pk}/"), 404, "NOT_FOUND")
    assert_envelope(bob_api.post(f"{base}deliveries/{delivery.pk}/redeliver/"), 404, "NOT_FOUND")
    assert_envelope(bob_api.get(f"webhooks/deliveries/{other.pk}/"), 404, "NOT_FOUND")
    assert_envelope(bob_api.post(f"webhooks/deliveries/{other.pk}/redeliver/"), 404, "NOT_FOUND")
    assert assert_envelope(bob_api.get("webhooks/"), 200)["data"]["webhooks"] == []
    listed = bob_api.get("webhooks/deliveries/", {"message_id": delivery.event.message_id})
    assert assert_envelope(listed, 200)["data"]["deliveries"] == []
    assert Endpoint.objects.get().active


@pytest.mark.parametrize("permission", [Permission.READ, Permission.WRITE])
def test_read_and_write_keys_cannot_manage_webhooks(api, alice, api_for, permission):
    webhook = create(api)
    weak = api_for(alice, permission)
    base = f"webhooks/{webhook['id']}/"
    calls = [
        weak.get("webhooks/"),
        weak.post("webhooks/", {"url": "http://127.0.0.1:9/x"}),
        weak.get(base),
        weak.patch(base, {"active": False}),
        weak.delete(base),
        weak.post(f"{base}test/"),
        weak.post(f"{base}rotate-secret/"),
        weak.get(f"{base}deliveries/"),
        weak.get("webhooks/signing-secret/"),
        weak.post("webhooks/signing-secret/rotate/"),
    ]
    for response in calls:
        assert_envelope(response, 403, "PERMISSION_DENIED")
    assert Endpoint.objects.count() == 1


def test_a_read_key_can_inspect_a_messages_deliveries(alice, api_for):
    message = make_message(alice, webhook_url="http://127.0.0.1:9/m")
    change_status(message, Recipient.Status.SENT)
    reader = api_for(alice, Permission.READ)
    body = assert_envelope(reader.get("webhooks/deliveries/", {"message_id": message.pk}), 200)
    [row] = body["data"]["deliveries"]
    assert row["event"] == "message.sent"
    assert row["message_id"] == message.pk
    assert row["url"] == "http://127.0.0.1:9/m"
    assert row["status"] == "pending"
    detail = assert_envelope(reader.get(f"webhooks/deliveries/{row['id']}/"), 200)["data"]
    assert detail["payload"]["message_id"] == message.pk
    assert detail["attempt_log"] == []
    assert_envelope(
        reader.post(f"webhooks/deliveries/{row['id']}/redeliver/"), 403, "PERMISSION_DENIED"
    )


def test_anonymous_requests_are_refused(anon):
    assert_envelope(anon.get("webhooks/"), 401, "INVALID_CREDENTIALS")


def test_the_test_event_is_sent_now(api, alice_key, receiver):
    webhook = create(api, url=receiver.url)
    body = assert_envelope(api.post(f"webhooks/{webhook['id']}/test/"), 200)
    assert body["message"] == "Test event delivered"
    data = body["data"]
    assert data["event"] == "message.test"
    assert data["status"] == "succeeded"
    assert data["attempts"] == 1
    assert data["last_status_code"] == 200
    assert data["attempt_log"][0]["status_code"] == 200
    [request] = receiver.requests
    assert request.header("X-Mifumo-Event") == "message.test"
    assert request.json()["event"] == "message.test"
    assert request.json()["event_id"] == data["event_id"]
    assert set(request.json()) >= {"message_id", "status", "recipients", "metadata"}
    assert request.header("Authorization") == f"Bearer {alice_key.raw}"
    assert verify_example.verify(
        webhook["secret"], request.header("X-Mifumo-Signature"), request.body
    )


def test_a_failed_test_event_is_reported_and_not_retried(api, receiver):
    webhook = create(api, url=receiver.url)
    receiver.then(Answer(status=503, body=b"maintenance"))
    body = assert_envelope(api.post(f"webhooks/{webhook['id']}/test/"), 200)
    assert body["message"] == "Test event delivery failed"
    assert body["data"]["status"] == "failed"
    assert body["data"]["next_attempt_at"] is None
    assert body["data"]["last_status_code"] == 503
    assert body["data"]["response"] == "maintenance"
    assert body["data"]["error"] == "HTTP 503 Service Unavailable"


def test_rotating_keeps_the_old_secret_signing_during_the_grace_period(api, receiver):
    webhook = create(api, url=receiver.url)
    path = f"webhooks/{webhook['id']}/rotate-secret/"
    rotated = assert_envelope(api.post(path), 200)["data"]
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != webhook["secret"]
    assert rotated["secret_rotated_at"] is not None

    assert_envelope(api.post(f"webhooks/{webhook['id']}/test/"), 200)
    header = receiver.requests[-1].header("X-Mifumo-Signature")
    assert header.count("v1=") == 2
    body = receiver.requests[-1].body
    assert verify_example.verify(rotated["secret"], header, body)
    assert verify_example.verify(webhook["secret"], header, body)

    final = assert_envelope(api.post(path, {"grace_period_seconds": 0}), 200)["data"]
    assert_envelope(api.post(f"webhooks/{webhook['id']}/test/"), 200)
    header = receiver.requests[-1].header("X-Mifumo-Signature")
    body = receiver.requests[-1].body
    assert header.count("v1=") == 1
    assert verify_example.verify(final["secret"], header, body)
    assert not verify_example.verify(rotated["secret"], header, body)

    assert_envelope(api.post(path, {"grace_period_seconds": -1}), 400, "VALIDATION_ERROR")


def test_the_account_signing_secret_is_stable_until_rotated(api):
    first = assert_envelope(api.get("webhooks/signing-secret/"), 200)["data"]
    again = assert_envelope(api.get("webhooks/signing-secret/"), 200)["data"]
    assert first["secret"] == again["secret"]
    rotated = assert_envelope(api.post("webhooks/signing-secret/rotate/"), 200)["data"]
    assert rotated["secret"] != first["secret"]
    assert rotated["previous_secret_expires_at"] is not None


def test_endpoint_deliveries_are_paginated_newest_first(api, alice, receiver):
    webhook = create(api, url=receiver.url)
    message = make_message(alice)
    for status in ("sent", "delivered", "failed"):
        change_status(message, status)
    first = Delivery.objects.order_by("created_at", "id").first()
    assert first is not None
    delivery_attempt(delivery_id=first.pk)

    path = f"webhooks/{webhook['id']}/deliveries/"
    page1 = assert_envelope(api.get(path, {"per_page": 2}), 200)["data"]
    assert page1["pagination"] == {"page": 1, "per_page": 2, "total": 3, "pages": 2}
    assert [d["event"] for d in page1["deliveries"]] == ["message.failed", "message.delivered"]
    page2 = assert_envelope(api.get(path, {"per_page": 2, "page": 2}), 200)["data"]
    [row] = page2["deliveries"]
    assert row["id"] == first.pk
    assert row["event"] == "message.sent"
    assert row["event_id"] == first.event_id
    assert row["status"] == "succeeded"
    assert row["attempts"] == 1
    assert row["last_status_code"] == 200
    assert row["latency_ms"] > 0
    assert row["error"] is None
    assert row["response"] == '{"ok":true}'
    assert row["next_attempt_at"] is None
    assert row["webhook_id"] == webhook["id"]
    only_pending = api.get(path, {"status": "pending"})
    assert assert_envelope(only_pending, 200)["data"]["pagination"]["total"] == 2
    for bad in ({"per_page": 101}, {"page": 0}, {"page": "x"}, {"status": "lost"}):
        assert_envelope(api.get(path, bad), 400, "VALIDATION_ERROR")


def test_redeliver_through_the_endpoint_route(
    api, alice, receiver, django_capture_on_commit_callbacks
):
    webhook = create(api, url=receiver.url)
    change_status(make_message(alice), Recipient.Status.SENT)
    delivery = Delivery.objects.get()
    base = f"webhooks/{webhook['id']}/deliveries/{delivery.pk}/redeliver/"
    assert_envelope(api.post(base), 409, "CONFLICT")  # still pending

    delivery_attempt(delivery_id=delivery.pk)
    with django_capture_on_commit_callbacks(execute=True):
        data = assert_envelope(api.post(base), 202)["data"]
    assert data["redelivery"] is True
    assert data["event_id"] == delivery.event_id
    assert Delivery.objects.get(pk=data["id"]).status == "succeeded"
    ids = [r.json()["event_id"] for r in receiver.requests]
    assert ids == [delivery.event_id, delivery.event_id]

    Endpoint.objects.filter(pk=webhook["id"]).update(active=False)
    assert_envelope(api.post(base), 409, "CONFLICT")


def test_create_honours_idempotency_keys(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "create-hook-1"}
    first = api.post("webhooks/", {"url": "http://127.0.0.1:9/x"}, **headers)
    second = api.post("webhooks/", {"url": "http://127.0.0.1:9/x"}, **headers)
    assert first.json() == second.json()
    assert Endpoint.objects.count() == 1


def test_methods_not_allowed_are_enveloped(api):
    webhook = create(api)
    assert_envelope(
        api.client.put(f"/api/integration/v1/webhooks/{webhook['id']}/"), 405, "METHOD_NOT_ALLOWED"
    )


@pytest.mark.parametrize("body", ["[]", "false", "0", '""', "[1]"])
def test_a_rotation_with_a_body_that_is_no_object_is_refused_and_rotates_nothing(api, body):
    webhook = create(api, url="https://hooks.example.com/a")
    account_secret = assert_envelope(api.get("webhooks/signing-secret/"), 200)["data"]["secret"]
    for path in (f"webhooks/{webhook['id']}/rotate-secret/", "webhooks/signing-secret/rotate/"):
        response = api.client.post(
            f"/api/integration/v1/{path}", data=body, content_type="application/json"
        )
        assert_envelope(response, 400, "VALIDATION_ERROR")
    assert Endpoint.objects.get(pk=webhook["id"]).secret_rotated_at is None
    again = assert_envelope(api.get("webhooks/signing-secret/"), 200)["data"]["secret"]
    assert again == account_secret


def test_a_rotation_with_an_empty_body_or_object_rotates(api):
    webhook = create(api, url="https://hooks.example.com/a")
    path = f"/api/integration/v1/webhooks/{webhook['id']}/rotate-secret/"
    for body in ("", "{}"):
        response = api.client.post(path, data=body, content_type="application/json")
        assert_envelope(response, 200)


def test_an_endpoints_deliveries_filter_by_message(api, alice):
    webhook = create(api)
    first, second = make_message(alice), make_message(alice)
    for message in (first, second):
        change_status(message, Recipient.Status.SENT)
    path = f"webhooks/{webhook['id']}/deliveries/"
    every = assert_envelope(api.get(path), 200)["data"]["deliveries"]
    assert len(every) == 2
    only = assert_envelope(api.get(path, {"message_id": first.pk}), 200)["data"]["deliveries"]
    expected = Delivery.objects.get(endpoint_id=webhook["id"], event__message=first)
    assert [row["id"] for row in only] == [expected.pk]
    assert_envelope(api.get(path, {"message_id": "m" * 41}), 400, "VALIDATION_ERROR")
