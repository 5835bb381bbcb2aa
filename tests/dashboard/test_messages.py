"""The message list and search, a message's page, and sending from the dashboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.models import AuditEvent
from integration.models import Account
from sms.models import Message, SenderId
from tests.dashboard.data import make_message
from tests.dashboard.support import dash
from webhooks.models import Delivery, Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(alice: Account) -> dict[str, Message]:
    now = timezone.now()
    return {
        "old": make_message(
            alice,
            statuses=["delivered"],
            phones=["+255754000111"],
            created_at=now - timedelta(days=9),
        ),
        "failed": make_message(
            alice, statuses=["failed", "delivered"], phones=["+255712000222", "+255712000333"]
        ),
        "queued": make_message(alice, statuses=["queued"], phones=["+255765000444"]),
    }


def listed(client: Client, **params: Any) -> list[str]:
    response = client.get(dash("messages/"), params)
    assert response.status_code == 200
    return [m.pk for m, _status in response.context["rows"]]


def test_the_list_is_newest_first_with_derived_status(
    owner_client: Client, history: dict[str, Message]
) -> None:
    response = owner_client.get(dash("messages/"))
    rows = [(m.pk, status) for m, status in response.context["rows"]]
    assert rows == [
        (history["queued"].pk, "queued"),
        (history["failed"].pk, "partially_delivered"),
        (history["old"].pk, "delivered"),
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "+255712000333"}, ["failed"]),
        ({"q": "0712 000 333"}, ["failed"]),
        ({"q": "000444"}, ["queued"]),
        ({"q": "nothing-like-a-phone"}, []),
        ({"status": "failed"}, ["failed"]),
        ({"status": "delivered"}, ["failed", "old"]),
    ],
)
def test_search_by_phone_and_status(
    owner_client: Client, history: dict[str, Message], params: dict[str, str], expected: list[str]
) -> None:
    assert listed(owner_client, **params) == [history[k].pk for k in expected]


def test_search_by_message_id_and_date(owner_client: Client, history: dict[str, Message]) -> None:
    assert listed(owner_client, q=history["old"].pk) == [history["old"].pk]
    today = timezone.now().date()
    assert listed(owner_client, start=today.isoformat()) == [
        history["queued"].pk,
        history["failed"].pk,
    ]
    old_day = (today - timedelta(days=9)).isoformat()
    assert listed(owner_client, start=old_day, end=old_day) == [history["old"].pk]


def test_the_message_page_shows_recipients_and_webhook_deliveries(
    owner_client: Client, alice: Account, history: dict[str, Message]
) -> None:
    message = history["failed"]
    event = Event.objects.create(account=alice, type="message.failed", message=message, body="{}")
    Delivery.objects.create(
        event=event,
        account=alice,
        url="https://example.com/hook",
        status="succeeded",
        last_status_code=204,
        last_latency_ms=42.0,
        last_response="ok-from-receiver",
    )
    response = owner_client.get(dash(f"messages/{message.pk}/"))
    content = response.content.decode()
    assert response.context["status"] == "partially_delivered"
    assert "+255712000222" in content and "UNDELIVERABLE" in content
    assert "https://example.com/hook" in content and "204" in content
    assert "ok-from-receiver" in content


def test_sending_from_the_dashboard(owner_client: Client, alice: Account, owner: Any) -> None:
    response = owner_client.post(
        dash("messages/send/"),
        {
            "recipients": "+255712345678\n0754 000 001; +255712345678",
            "sender_id": "MIFUMO",
            "message": "Habari!",
        },
    )
    message = Message.objects.get()
    assert response.status_code == 302
    assert response["Location"] == dash(f"messages/{message.pk}/")
    assert message.source == "dashboard" and message.recipient_count == 2
    alice.refresh_from_db()
    assert alice.balance == 5000 - 20
    event = AuditEvent.objects.get(action="message.sent")
    assert event.actor == owner and event.target == message.pk


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"recipients": "+255712345678, 12345"}, "1 recipient(s) are not valid mobile numbers"),
        ({"recipients": "+254712345678"}, "No route covers 1 recipient(s)"),
        ({"message": "x" * 200}, "The message is 200 characters; the limit is 160"),
        ({"recipients": ""}, "Give at least one number or choose a segment."),
        ({"sender_id": "NOTMINE"}, "Select a valid choice"),
    ],
)
def test_refusals_are_shown_on_the_send_form(
    owner_client: Client, fields: dict[str, str], shown: str
) -> None:
    data = {"recipients": "+255712345678", "sender_id": "MIFUMO", "message": "Habari"}
    data.update(fields)
    response = owner_client.post(dash("messages/send/"), data)
    assert response.status_code == 400
    assert shown in response.content.decode()
    assert Message.objects.count() == 0


def test_an_approved_sender_id_can_be_chosen(owner_client: Client, alice: Account) -> None:
    SenderId.objects.create(account=alice, value="DUKA", status=SenderId.Status.APPROVED)
    SenderId.objects.create(account=alice, value="WAITING")
    form = owner_client.get(dash("messages/send/")).context["form"]
    assert [v for v, _ in form.fields["sender_id"].choices] == ["MIFUMO", "DUKA"]


def test_insufficient_balance_is_explained(owner_client: Client, alice: Account) -> None:
    Account.objects.filter(pk=alice.pk).update(balance=5)
    response = owner_client.post(
        dash("messages/send/"),
        {"recipients": "+255712345678", "sender_id": "MIFUMO", "message": "Habari"},
    )
    assert response.status_code == 400
    assert "Account balance too low" in response.content.decode()


def test_a_member_cannot_send(member_client: Client) -> None:
    page = member_client.get(dash("messages/send/"))
    assert page.status_code == 200 and b'id="send-form"' not in page.content
    response = member_client.post(
        dash("messages/send/"),
        {"recipients": "+255712345678", "sender_id": "MIFUMO", "message": "Habari"},
    )
    assert response.status_code == 403
    assert Message.objects.count() == 0


def test_a_scheduled_message_can_be_canceled(owner_client: Client, alice: Account) -> None:
    message = make_message(alice, statuses=["scheduled", "scheduled"])
    page = owner_client.get(dash(f"messages/{message.pk}/"))
    assert b"Cancel scheduled message" in page.content
    response = owner_client.post(dash(f"messages/{message.pk}/cancel/"), follow=True)
    assert b"Canceled; 20.00 TZS refunded." in response.content
    assert set(message.recipients.values_list("status", flat=True)) == {"canceled"}
    assert AuditEvent.objects.filter(action="message.canceled").count() == 1


def test_a_suspended_account_cannot_send_from_the_dashboard(
    owner_client: Client, alice: Account
) -> None:
    Account.objects.filter(pk=alice.pk).update(status="suspended")
    response = owner_client.post(
        dash("messages/send/"),
        {"recipients": "+255712345678", "sender_id": "MIFUMO", "message": "Habari"},
    )
    assert response.status_code == 400
    assert b"This account is suspended" in response.content
