"""Another account's keys, messages, webhooks, deliveries, contacts and segments answer 404
and are never changed."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from contacts.models import Contact
from integration.models import Account, ApiKey
from integration.services import api_key_create
from segments.models import Segment
from tests.dashboard.data import make_message
from tests.dashboard.support import dash
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, Endpoint, Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def bobs(bob: Account, settings: Any) -> dict[str, Any]:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    endpoint = endpoint_create(account=bob, url="http://127.0.0.1:9/bob")
    message = make_message(bob, statuses=["scheduled"], text="Bob's secret plan")
    event = Event.objects.create(account=bob, type="message.sent", message=message, body="{}")
    return {
        "key": api_key_create(account=bob, name="bob key").api_key,
        "message": message,
        "endpoint": endpoint,
        "delivery": Delivery.objects.create(
            event=event, account=bob, endpoint=endpoint, url=endpoint.url, status="failed"
        ),
        "contact": Contact.objects.create(
            account=bob, name="Bob's friend", phone_number="+255712000001"
        ),
        "segment": Segment.objects.create(account=bob, name="Bob's VIPs", criteria={}),
    }


@pytest.mark.parametrize(
    "path",
    [
        "messages/{message}/",
        "webhooks/{endpoint}/",
        "webhooks/deliveries/{delivery}/",
        "contacts/{contact}/",
        "segments/{segment}/",
    ],
)
def test_reading_another_accounts_object_is_404(
    owner_client: Client, bobs: dict[str, Any], path: str
) -> None:
    url = dash(path.format(**{k: v.pk for k, v in bobs.items()}))
    assert owner_client.get(url).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "keys/{key}/revoke/",
        "keys/{key}/rotate/",
        "messages/{message}/cancel/",
        "webhooks/{endpoint}/edit/",
        "webhooks/{endpoint}/toggle/",
        "webhooks/{endpoint}/delete/",
        "webhooks/{endpoint}/secret/",
        "webhooks/{endpoint}/rotate-secret/",
        "webhooks/{endpoint}/test/",
        "webhooks/deliveries/{delivery}/redeliver/",
    ],
)
def test_changing_another_accounts_object_is_404_and_changes_nothing(
    owner_client: Client, bobs: dict[str, Any], path: str
) -> None:
    url = dash(path.format(**{k: v.pk for k, v in bobs.items()}))
    data = {"nonce": "n1", "url": "http://127.0.0.1:9/x", "events": ["message.sent"], "active": ""}
    assert owner_client.post(url, data).status_code == 404
    key = ApiKey.objects.get(pk=bobs["key"].pk)
    assert key.revoked_at is None and key.digest == bobs["key"].digest
    endpoint = Endpoint.objects.get(pk=bobs["endpoint"].pk)
    assert endpoint.active and endpoint.url == "http://127.0.0.1:9/bob"
    assert endpoint.secret_encrypted == bobs["endpoint"].secret_encrypted
    assert Delivery.objects.filter(account=bobs["endpoint"].account).count() == 1
    assert bobs["message"].recipients.get().status == "scheduled"


def test_lists_show_only_the_accounts_own_rows(owner_client: Client, bobs: dict[str, Any]) -> None:
    for page in ["keys/", "messages/", "webhooks/", "contacts/", "segments/"]:
        content = owner_client.get(dash(page)).content.decode()
        for obj in ("bob key", "Bob&#x27;s secret plan", "127.0.0.1:9/bob", "Bob&#x27;s friend"):
            assert obj not in content, (page, obj)
    search = owner_client.get(dash("messages/"), {"q": bobs["message"].pk})
    assert search.context["rows"] == []
    assert b"No message matches this search" in search.content
