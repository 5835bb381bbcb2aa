"""Message templates in the dashboard, and sending personalised messages from it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from contacts.models import Contact
from integration.models import Account, AuditEvent
from message_templates.models import MessageTemplate
from sms.models import Message, Recipient
from tests.dashboard.support import dash

pytestmark = pytest.mark.django_db

TEXT = "Habari {{name}}, oda {{order_id}} iko tayari {{city|Dar}}"


@pytest.fixture
def people(alice: Account) -> list[Contact]:
    return [
        Contact.objects.create(
            account=alice,
            name="Asha",
            phone_number="+255712000001",
            custom_fields={"order_id": "1043", "city": "Arusha"},
        ),
        Contact.objects.create(
            account=alice,
            name="Ayşe",
            phone_number="+255754000002",
            custom_fields={"order_id": "7"},
        ),
    ]


def test_a_template_is_created_listed_edited_and_deleted(
    owner_client: Client, alice: Account
) -> None:
    created = owner_client.post(dash("templates/new/"), {"name": " Order ready ", "text": TEXT})
    assert created.status_code == 302 and created["Location"] == dash("templates/")
    template = MessageTemplate.objects.get(account=alice)
    assert (template.name, template.text) == ("Order ready", TEXT)
    page = owner_client.get(dash("templates/")).content.decode()
    assert "Order ready" in page and template.pk in page
    assert "order_id</span>" in page and f"messages/send/?template={template.pk}" in page
    form = owner_client.get(dash(f"templates/{template.pk}/edit/"))
    assert form.context["form"]["text"].value() == TEXT
    owner_client.post(
        dash(f"templates/{template.pk}/edit/"), {"name": "Order ready", "text": "Bye {{name}}"}
    )
    template.refresh_from_db()
    assert template.text == "Bye {{name}}"
    owner_client.post(dash(f"templates/{template.pk}/delete/"))
    assert not MessageTemplate.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="template.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["template.created", "template.updated", "template.deleted"]


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"text": "Hi {{Name}}"}, "is not a placeholder"),
        ({"text": "Hi {{name"}, "never closed"),
        ({"text": "  "}, "This field is required."),
        ({"name": "taken"}, "already exists"),
    ],
)
def test_a_bad_template_is_explained_on_the_form(
    owner_client: Client, alice: Account, fields: dict[str, str], shown: str
) -> None:
    MessageTemplate.objects.create(account=alice, name="Taken", text="x")
    response = owner_client.post(dash("templates/new/"), {"name": "New", "text": "x", **fields})
    assert response.status_code == 400 and shown in response.content.decode()
    assert MessageTemplate.objects.count() == 1


def test_another_accounts_template_is_not_found(owner_client: Client, bob: Account) -> None:
    theirs = MessageTemplate.objects.create(account=bob, name="x", text="Hi")
    assert owner_client.get(dash(f"templates/{theirs.pk}/edit/")).status_code == 404
    assert owner_client.post(dash(f"templates/{theirs.pk}/delete/")).status_code == 404
    assert owner_client.get(dash(f"messages/send/?template={theirs.pk}")).status_code == 404
    assert MessageTemplate.objects.filter(pk=theirs.pk).exists()


def test_a_member_sees_templates_but_cannot_change_them(
    member_client: Client, alice: Account
) -> None:
    template = MessageTemplate.objects.create(account=alice, name="x", text="Hi")
    page = member_client.get(dash("templates/"))
    assert page.status_code == 200 and "Hi" in page.content.decode()
    assert member_client.post(dash("templates/new/"), {"name": "y", "text": "z"}).status_code == 403
    assert member_client.post(dash(f"templates/{template.pk}/delete/")).status_code == 403
    assert MessageTemplate.objects.count() == 1


def test_sending_from_a_template_previews_each_recipients_text_then_sends(
    owner_client: Client, alice: Account, people: list[Contact]
) -> None:
    template = MessageTemplate.objects.create(account=alice, name="Order", text=TEXT)
    form = owner_client.get(dash(f"messages/send/?template={template.pk}"))
    assert form.context["form"]["message"].value() == TEXT
    fields = {
        "recipients": "+255712000001, +255754000002",
        "sender_id": "MIFUMO",
        "message": TEXT,
        "nonce": form.context["form"]["nonce"].value(),
    }
    preview = owner_client.post(dash("messages/send/"), fields)
    assert preview.status_code == 200
    assert preview.context["first"] == [
        {
            "phone": "+255712000001",
            "text": "Habari Asha, oda 1043 iko tayari Arusha",
            "segments": 1,
            "cost": 10,
        },
        # "ş" makes Ayşe's text UCS-2; it still fits one part.
        {
            "phone": "+255754000002",
            "text": "Habari Ayşe, oda 7 iko tayari Dar",
            "segments": 1,
            "cost": 10,
        },
    ]
    content = preview.content.decode()
    assert "Habari Asha, oda 1043 iko tayari Arusha" in content
    assert "each recipient's own text" in content
    assert Message.objects.count() == 0
    owner_client.post(dash("messages/send/"), {**fields, "step": "send"})
    message = Message.objects.get()
    assert message.text == TEXT and message.personalised
    assert dict(Recipient.objects.values_list("phone", "text")) == {
        "+255712000001": "Habari Asha, oda 1043 iko tayari Arusha",
        "+255754000002": "Habari Ayşe, oda 7 iko tayari Dar",
    }
    page = owner_client.get(dash(f"messages/{message.pk}/")).content.decode()
    assert "each recipient's own text is below" in page
    assert "Habari Asha, oda 1043 iko tayari Arusha" in page
    assert "Habari Ayşe, oda 7 iko tayari Dar" in page


def test_the_live_counter_says_a_template_is_counted_per_recipient(owner_client: Client) -> None:
    info = owner_client.get(dash("messages/send/text/"), {"text": "Hi {{name}}"}).json()
    assert info["summary"] == (
        "With placeholders as typed: 11 / 160 characters · GSM-7 · 1 part (up to 160 "
        "characters each). Each recipient's text is counted alone."
    )


def test_the_live_preview_shows_the_first_recipients_texts_parts_and_cost(
    owner_client: Client, people: list[Contact]
) -> None:
    query: dict[str, Any] = {
        "recipients": "+255712000001\n+255754000002",
        "sender_id": "MIFUMO",
        "message": "Dear {{name}}, " + "x" * 60,
    }
    answer = owner_client.get(dash("messages/send/preview/"), query).json()
    assert answer["ok"] is True
    assert answer["recipients"] == [
        {
            "phone": "+255712000001",
            "text": "Dear Asha, " + "x" * 60,
            "segments": 1,
            "cost": "10.00",
        },
        {
            "phone": "+255754000002",
            "text": "Dear Ayşe, " + "x" * 60,
            "segments": 2,
            "cost": "20.00",
        },
    ]
    assert answer["summary"] == "2 recipients, up to 2 parts each, 30.00 TZS in all"
    assert Message.objects.count() == 0


def test_the_live_preview_says_what_stops_the_send(
    owner_client: Client, people: list[Contact]
) -> None:
    query = {"recipients": "+255712000001\n+255713000009", "sender_id": "MIFUMO"}
    missing = owner_client.get(
        dash("messages/send/preview/"), {**query, "message": "Hi {{name}}"}
    ).json()
    assert missing["ok"] is False
    assert "1 recipient(s) have no value" in missing["problems"][0]
    malformed = owner_client.get(
        dash("messages/send/preview/"), {**query, "message": "Hi {{name"}
    ).json()
    assert malformed["ok"] is False and "malformed placeholder" in malformed["problems"][0]
    empty = owner_client.get(dash("messages/send/preview/"), {"sender_id": "MIFUMO"}).json()
    assert empty["ok"] is False and empty["problems"]


def test_a_member_gets_no_live_preview(member_client: Client) -> None:
    response = member_client.get(
        dash("messages/send/preview/"),
        {"recipients": "+255712000001", "sender_id": "MIFUMO", "message": "Hi"},
    )
    assert response.status_code == 403
