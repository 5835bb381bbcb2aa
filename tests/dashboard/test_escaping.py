"""Whatever users type is shown as text, never as markup."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from contacts.models import Contact
from integration.models import Account
from integration.services import api_key_create
from segments.models import Segment
from sms.sender_ids import sender_id_request
from tests.dashboard.data import make_message
from tests.dashboard.support import dash
from webhooks.endpoints import endpoint_create

pytestmark = pytest.mark.django_db

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


def assert_escaped(content: bytes) -> None:
    text = content.decode()
    assert EVIL not in text
    assert "<script>alert" not in text and "<img src=x" not in text
    assert ESCAPED in text


def test_a_contact_name_is_escaped(owner_client: Client, alice: Account) -> None:
    contact = Contact.objects.create(account=alice, name=EVIL, phone_number="+255712000009")
    assert_escaped(owner_client.get(dash("contacts/")).content)
    assert_escaped(owner_client.get(dash(f"contacts/{contact.pk}/")).content)
    segment = Segment.objects.create(account=alice, name=EVIL, criteria={})
    assert_escaped(owner_client.get(dash("segments/")).content)
    assert_escaped(owner_client.get(dash(f"segments/{segment.pk}/")).content)


def test_a_key_name_is_escaped(owner_client: Client, alice: Account) -> None:
    api_key_create(account=alice, name=EVIL)
    assert_escaped(owner_client.get(dash("keys/")).content)
    response = owner_client.post(
        dash("keys/create/"), {"name": EVIL, "permission": "read", "mode": "test", "nonce": "a1"}
    )
    assert_escaped(response.content)
    assert_escaped(owner_client.get(dash("activity/")).content)


def test_a_message_text_is_escaped(owner_client: Client, alice: Account) -> None:
    message = make_message(alice, text=EVIL)
    assert_escaped(owner_client.get(dash("messages/")).content)
    assert_escaped(owner_client.get(dash(f"messages/{message.pk}/")).content)


def test_webhook_and_sender_id_text_is_escaped(
    owner_client: Client, alice: Account, settings: Any
) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    endpoint = endpoint_create(account=alice, url="http://127.0.0.1:9/hook", description=EVIL)
    assert_escaped(owner_client.get(dash("webhooks/")).content)
    sender_id_request(account=alice, value="DUKA", purpose=EVIL)
    assert_escaped(owner_client.get(dash("sender-ids/")).content)
    assert endpoint.pk
