"""A webhook carries only the key that sent the message, and none once that key is revoked or
rotated: rotating a stolen key must never hand the new key to the thief's webhook_url."""

from __future__ import annotations

from typing import Any

import pytest

from integration.models import Account, ApiKey, AuditEvent
from sms.models import Recipient
from tests.helpers import Api, assert_envelope
from tests.webhooks.conftest import change_status, make_message
from tests.webhooks.receiver import Receiver
from webhooks import verify_example
from webhooks.delivery import delivery_attempt, delivery_redeliver
from webhooks.endpoints import account_signing_secret_ensure
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_receivers(settings: Any) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True


def _deliver_all() -> None:
    for delivery_id in Delivery.objects.filter(status="pending").values_list("pk", flat=True):
        delivery_attempt(delivery_id=delivery_id)


def test_a_rotated_key_is_not_sent_with_webhooks_of_earlier_messages(
    alice: Account, make_key: Any, api: Api, receiver: Receiver
) -> None:
    stolen = make_key(alice, name="billing")
    message = make_message(alice, api_key=stolen.api_key, webhook_url=receiver.url)

    rotated = assert_envelope(api.post(f"keys/{stolen.api_key.pk}/rotate/"), 200)["data"]
    change_status(message, Recipient.Status.SENT)
    _deliver_all()

    [request] = receiver.requests
    assert request.header("Authorization") is None
    assert rotated["key"] not in repr(request.headers)
    # The signature still authenticates the event.
    secret = account_signing_secret_ensure(account_id=alice.pk).secret
    assert verify_example.verify(secret, request.header("X-Mifumo-Signature") or "", request.body)
    # The new key works, the old one does not.
    assert_envelope(Api(rotated["key"]).get("sms/balance/"), 200)
    assert_envelope(Api(stolen.raw).get("sms/balance/"), 401, "INVALID_CREDENTIALS")


def test_rotation_makes_a_new_key_record_and_wipes_the_old_copy(
    alice: Account, make_key: Any, api: Api
) -> None:
    old = make_key(alice, name="billing", permission="write")
    rotated = assert_envelope(api.post(f"keys/{old.api_key.pk}/rotate/"), 200)["data"]

    assert rotated["id"] != old.api_key.pk
    assert rotated["name"] == "billing" and rotated["permissions"] == ["read", "write"]
    previous = ApiKey.objects.get(pk=old.api_key.pk)
    assert previous.status == "revoked"
    assert previous.rotated_at is not None
    assert previous.encrypted_key == ""
    assert previous.replaced_by_id == rotated["id"]
    # Rotating it again is refused: it is no longer a working key.
    assert_envelope(api.post(f"keys/{old.api_key.pk}/rotate/"), 409, "CONFLICT")


def test_redelivering_after_a_rotation_carries_no_key(
    alice: Account, make_key: Any, api: Api, receiver: Receiver
) -> None:
    sender = make_key(alice)
    message = make_message(alice, api_key=sender.api_key, webhook_url=receiver.url)
    change_status(message, Recipient.Status.SENT)
    _deliver_all()
    assert receiver.requests[0].header("Authorization") == f"Bearer {sender.raw}"

    assert_envelope(api.post(f"keys/{sender.api_key.pk}/rotate/"), 200)
    delivery_redeliver(delivery=Delivery.objects.get())
    _deliver_all()

    assert len(receiver.requests) == 2
    assert receiver.requests[1].header("Authorization") is None


def test_a_revoked_key_is_not_sent_with_webhooks(
    alice: Account, make_key: Any, api: Api, receiver: Receiver
) -> None:
    sender = make_key(alice)
    message = make_message(alice, api_key=sender.api_key, webhook_url=receiver.url)
    assert_envelope(api.post(f"keys/{sender.api_key.pk}/revoke/"), 200)
    assert ApiKey.objects.get(pk=sender.api_key.pk).encrypted_key == ""

    change_status(message, Recipient.Status.SENT)
    _deliver_all()

    [request] = receiver.requests
    assert request.header("Authorization") is None


def test_an_expired_key_is_not_sent_with_webhooks(
    alice: Account, make_key: Any, receiver: Receiver
) -> None:
    sender = make_key(alice)
    message = make_message(alice, api_key=sender.api_key, webhook_url=receiver.url)
    ApiKey.objects.filter(pk=sender.api_key.pk).update(expires_at="2001-01-01T00:00:00Z")

    change_status(message, Recipient.Status.SENT)
    _deliver_all()

    assert receiver.requests[0].header("Authorization") is None


def test_rotation_and_revocation_are_in_the_activity_log(
    alice: Account, make_key: Any, api: Api
) -> None:
    key = make_key(alice, name="billing")
    rotated = assert_envelope(api.post(f"keys/{key.api_key.pk}/rotate/"), 200)["data"]
    assert_envelope(api.post(f"keys/{rotated['id']}/revoke/"), 200)

    rotation = AuditEvent.objects.get(account=alice, action="api_key.rotated")
    assert rotation.details["previous_prefix"] == key.api_key.prefix
    assert rotation.details["prefix"] == rotated["prefix"]
    assert rotated["prefix"] in rotation.target
    revocation = AuditEvent.objects.get(account=alice, action="api_key.revoked")
    assert rotated["prefix"] in revocation.target
