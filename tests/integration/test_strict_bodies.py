"""A field a write route does not know is refused by name (400 VALIDATION_ERROR listing the
fields it takes), so that a misspelt option is an error rather than silently its default;
the refused request changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from contacts.models import Contact
from message_templates.models import MessageTemplate
from segments.models import Segment
from tests.helpers import assert_envelope
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db


def refused(response: Any, field: str) -> None:
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert list(body["details"]) == [field]
    assert body["details"][field][0].startswith("Unknown field; the fields are: ")


def test_creates_refuse_a_misspelt_field_and_store_nothing(api: Any, settings: Any) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    refused(
        api.post("contacts/create/", {"name": "Asha", "phone_number": "0712345678", "tag": ["x"]}),
        "tag",
    )
    refused(api.post("contacts/segments/create/", {"name": "VIP", "critera": {}}), "critera")
    refused(api.post("sms/templates/create/", {"name": "Order", "text": "Hi", "txt": "x"}), "txt")
    refused(api.post("webhooks/", {"url": "http://127.0.0.1:9/h", "event": ["x"]}), "event")
    assert not Contact.objects.exists() and not Segment.objects.exists()
    assert not MessageTemplate.objects.exists() and not Endpoint.objects.exists()


def test_an_update_refuses_a_misspelt_field_and_changes_nothing(api: Any) -> None:
    created = api.post("contacts/create/", {"name": "Asha", "phone_number": "0712345678"})
    contact_id = assert_envelope(created, 201)["data"]["id"]
    refused(api.patch(f"contacts/{contact_id}/", {"name": "Asha M.", "emial": "a@b.c"}), "emial")
    assert Contact.objects.get().name == "Asha"
