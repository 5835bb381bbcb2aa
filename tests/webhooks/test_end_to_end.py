"""From POST sms/send/ with a webhook_url to the receiver, through a real worker."""

from __future__ import annotations

import pytest

from tests.helpers import assert_envelope
from tests.workers import wait_until
from webhooks import verify_example
from webhooks.models import Delivery

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

DELIVERED = "+255712345678"
UNDELIVERABLE = "+255712340001"  # the simulator fails numbers ending in 0001


def test_a_send_with_a_webhook_url_reports_sent_then_delivered(
    api, alice, receiver, celery_worker_factory
):
    celery_worker_factory(MIFUMO_SIMULATOR_DELAY="0.5", MIFUMO_WEBHOOK_ALLOW_PRIVATE="true")

    sent = api.post(
        "sms/send/",
        {
            "message": "Habari",
            "recipients": [DELIVERED, UNDELIVERABLE],
            "webhook_url": receiver.url,
        },
    )
    message_id = assert_envelope(sent, 200)["data"]["message_id"]

    wait_until(lambda: len(receiver.requests) >= 3, timeout=30)
    wait_until(lambda: not Delivery.objects.filter(status="pending").exists(), timeout=10)
    events = [r.json() for r in receiver.requests]
    assert events[0]["event"] == "message.sent"
    assert events[0]["status"] == "sent"
    assert sorted(r["phone"] for r in events[0]["recipients"]) == [UNDELIVERABLE, DELIVERED]
    outcomes = {e["event"]: e for e in events[1:]}
    assert set(outcomes) == {"message.delivered", "message.failed"}
    delivered = outcomes["message.delivered"]
    assert delivered["recipients"][0]["phone"] == DELIVERED
    assert delivered["recipients"][0]["delivery_time"].endswith("Z")
    assert outcomes["message.failed"]["recipients"] == [
        {"phone": UNDELIVERABLE, "status": "failed", "delivery_time": None}
    ]
    for event in events:
        assert event["message_id"] == message_id
        assert event["metadata"] == {"sender_id": "MIFUMO", "cost": 20.0, "currency": "TZS"}
    secret = assert_envelope(api.get("webhooks/signing-secret/"), 200)["data"]["secret"]
    for request in receiver.requests:
        assert request.header("Authorization") == f"Bearer {api.raw_key}"
        assert verify_example.verify(secret, request.header("X-Mifumo-Signature"), request.body)
    assert len({e["event_id"] for e in events}) == 3
