"""The message list and search, a message's page, and sending from the dashboard."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from integration.models import Account, AuditEvent
from integration.services import account_refund, api_key_create, api_key_revoke
from segments.models import Segment
from sms.models import Message, Recipient, SenderId
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
    return [m.pk for m, _status, _refunded in response.context["rows"]]


def test_the_list_is_newest_first_with_derived_status(
    owner_client: Client, history: dict[str, Message]
) -> None:
    response = owner_client.get(dash("messages/"))
    rows = [(m.pk, status) for m, status, _refunded in response.context["rows"]]
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


def _form_nonce(client: Client) -> str:
    return str(client.get(dash("messages/send/")).context["form"]["nonce"].value())


def test_sending_from_the_dashboard_previews_then_sends_once(
    owner_client: Client, alice: Account, owner: Any
) -> None:
    fields = {
        "recipients": "+255712345678\n0754 000 001; +255712345678",
        "sender_id": "MIFUMO",
        "message": "Habari!",
        "nonce": _form_nonce(owner_client),
    }
    preview = owner_client.post(dash("messages/send/"), fields)
    assert preview.status_code == 200
    plan = preview.context["plan"]
    assert (len(plan.phones), plan.cost, preview.context["balance_after"]) == (2, 20, 4980)
    content = preview.content.decode()
    assert "GSM-7 · 1 part" in content and "2 recipients × 1 part × 10.00" in content
    assert "5,000.00 now" in content and "4,980.00" in content
    assert "Confirm and send" in content
    assert Message.objects.count() == 0  # a preview sends nothing

    response = owner_client.post(dash("messages/send/"), {**fields, "step": "send"})
    message = Message.objects.get()
    assert response.status_code == 302
    assert response["Location"] == dash(f"messages/{message.pk}/")
    assert message.source == "dashboard" and message.recipient_count == 2
    alice.refresh_from_db()
    assert alice.balance == 5000 - 20
    event = AuditEvent.objects.get(action="message.sent")
    assert event.actor == owner and event.target == message.pk

    # The same confirmation again (a reload, a double click) sends nothing more.
    again = owner_client.post(dash("messages/send/"), {**fields, "step": "send"}, follow=True)
    assert "That confirmation was already used" in again.content.decode()
    assert Message.objects.count() == 1


def test_a_double_click_on_confirm_sends_once(owner_client: Client, alice: Account) -> None:
    fields = {"recipients": "+255712345678", "sender_id": "MIFUMO", "message": "Habari!"}
    fields["nonce"] = _form_nonce(owner_client)
    # The second request read the session before the first saved it.
    session = Session.objects.get(session_key=owner_client.session.session_key)
    as_read = session.session_data
    owner_client.post(dash("messages/send/"), {**fields, "step": "send"})
    Session.objects.filter(pk=session.pk).update(session_data=as_read)
    owner_client.post(dash("messages/send/"), {**fields, "step": "send"})
    assert Message.objects.count() == 1
    alice.refresh_from_db()
    assert alice.balance == 5000 - 10


def test_change_goes_back_to_the_filled_form(owner_client: Client) -> None:
    fields = {"recipients": "+255712345678", "sender_id": "MIFUMO", "message": "Habari!"}
    response = owner_client.post(dash("messages/send/"), {**fields, "step": "edit"})
    assert response.status_code == 200
    assert response.context["form"]["message"].value() == "Habari!"
    assert b'id="send-form"' in response.content


def test_a_unicode_text_is_previewed_with_its_parts(owner_client: Client) -> None:
    text = "Habari 😀" * 10  # 80 characters, 90 UTF-16 units: over the 70 of one UCS-2 part
    response = owner_client.post(
        dash("messages/send/"),
        {"recipients": "+255712345678", "sender_id": "MIFUMO", "message": text},
    )
    content = response.content.decode()
    assert "80 / 160 characters · UCS-2 (Unicode: emoji or accents) · 2 parts" in content
    assert response.context["plan"].cost == 20


def test_the_live_counter_says_encoding_and_parts(owner_client: Client) -> None:
    info = owner_client.get(dash("messages/send/text/"), {"text": "😀" * 56}).json()
    assert (info["encoding"], info["length"], info["units"], info["segments"]) == (
        "UCS-2",
        56,
        112,
        2,
    )
    assert info["summary"] == (
        "56 / 160 characters · UCS-2 (Unicode: emoji or accents) · 2 parts (up to 67 units each)"
    )
    plain = owner_client.get(dash("messages/send/text/"), {"text": "Habari"}).json()
    assert plain["summary"] == "6 / 160 characters · GSM-7 · 1 part (up to 160 characters each)"
    assert plain["over_limit"] is False
    assert owner_client.get(dash("messages/send/text/"), {"text": "x" * 161}).json()["over_limit"]


def test_a_message_can_be_scheduled_in_the_browsers_time_zone(
    owner_client: Client, alice: Account
) -> None:
    when = (timezone.now() + timedelta(days=1)).astimezone(ZoneInfo("Africa/Dar_es_Salaam"))
    fields = {
        "recipients": "+255712345678",
        "sender_id": "MIFUMO",
        "message": "Kesho",
        "schedule_at": when.strftime("%Y-%m-%dT%H:%M"),
        "tz": "Africa/Dar_es_Salaam",
        "nonce": _form_nonce(owner_client),
    }
    preview = owner_client.post(dash("messages/send/"), fields)
    content = preview.content.decode()
    assert "This message will be sent later" in content
    assert f"{when:%d %b %Y %H:%M} (Africa/Dar_es_Salaam)" in content
    owner_client.post(dash("messages/send/"), {**fields, "step": "send"})
    message = Message.objects.get()
    assert message.schedule_time == when.replace(second=0, microsecond=0)
    assert set(message.recipients.values_list("status", flat=True)) == {"scheduled"}


def test_a_schedule_in_the_past_is_refused(owner_client: Client) -> None:
    response = owner_client.post(
        dash("messages/send/"),
        {
            "recipients": "+255712345678",
            "sender_id": "MIFUMO",
            "message": "Jana",
            "schedule_at": "2020-01-01T10:00",
        },
    )
    assert response.status_code == 400
    assert "schedule_time is in the past" in response.content.decode()


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
    fields = {"recipients": "+255712345678", "sender_id": "MIFUMO", "message": "Habari"}
    preview = owner_client.post(dash("messages/send/"), fields)
    content = preview.content.decode()
    assert "The balance does not cover this send" in content
    assert "Confirm and send" not in content
    fields["nonce"] = _form_nonce(owner_client)
    response = owner_client.post(dash("messages/send/"), {**fields, "step": "send"})
    assert response.status_code == 400
    assert "Account balance too low" in response.content.decode()
    assert Message.objects.count() == 0
    # The form shown again carries a fresh one-time token, so a second try can send.
    assert response.context["form"]["nonce"].value() != fields["nonce"]


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


def test_costs_are_shown_net_of_refunds(owner_client: Client, alice: Account) -> None:
    message = make_message(
        alice, statuses=["delivered", "failed", "failed"], charge=True
    )  # 30.00 charged
    Recipient.objects.filter(message=message, status="failed").update(sent_at=None)
    account_refund(account_id=alice.pk, amount=Decimal("20.00"), reference=message.pk)
    listing = owner_client.get(dash("messages/")).content.decode()
    assert ">10.00<" in listing and "20.00 refunded" in listing
    detail = owner_client.get(dash(f"messages/{message.pk}/"))
    assert (detail.context["net_cost"], detail.context["refunded"]) == (10, 20)
    content = detail.content.decode()
    assert "10.00 TZS" in content and "30.00 charged, 20.00 refunded" in content
    assert [refunded for _r, refunded in detail.context["recipients"]] == [False, True, True]


def test_a_canceled_schedule_shows_nothing_spent(owner_client: Client, alice: Account) -> None:
    message = make_message(alice, statuses=["scheduled", "scheduled"], charge=True)
    owner_client.post(dash(f"messages/{message.pk}/cancel/"))
    detail = owner_client.get(dash(f"messages/{message.pk}/"))
    assert detail.context["net_cost"] == 0
    assert "20.00 charged, 20.00 refunded" in detail.content.decode()


def test_the_date_filter_refuses_to_run_backwards(
    owner_client: Client, history: dict[str, Message]
) -> None:
    response = owner_client.get(dash("messages/"), {"start": "2025-03-02", "end": "2025-03-01"})
    assert response.status_code == 400
    assert "“To” is before “From”" in response.content.decode()


def test_messages_are_filtered_by_the_key_that_sent_them(
    owner_client: Client, alice: Account, history: dict[str, Message]
) -> None:
    billing = api_key_create(account=alice, name="Billing app").api_key
    revoked = api_key_create(account=alice, name="Old").api_key
    Message.objects.filter(pk=history["old"].pk).update(api_key=billing)
    Message.objects.filter(pk=history["failed"].pk).update(api_key=revoked, source="dashboard")
    assert listed(owner_client, key=str(billing.pk)) == [history["old"].pk]
    assert listed(owner_client, key="dashboard") == [history["failed"].pk]
    api_key_revoke(api_key=revoked)
    choices = dict(owner_client.get(dash("messages/")).context["form"].fields["key"].choices)
    assert choices[str(revoked.pk)].endswith("· revoked")
    stranger = api_key_create(account=Account.objects.create(name="other"), name="x").api_key
    refused = owner_client.get(dash("messages/"), {"key": str(stranger.pk)})
    assert refused.status_code == 400 and b"Select a valid choice" in refused.content


def test_line_breaks_are_sent_as_one_character(owner_client: Client) -> None:
    fields = {"recipients": "+255712345678", "sender_id": "MIFUMO", "message": "Habari\r\nKaribu"}
    preview = owner_client.post(dash("messages/send/"), fields)
    assert preview.context["plan"].text == "Habari\nKaribu"
    assert "13 / 160 characters" in preview.content.decode()


def test_a_segment_older_than_the_newest_hundred_can_be_sent_to(
    owner_client: Client, alice: Account
) -> None:
    Contact.objects.create(account=alice, name="Asha", phone_number="+255712345678", tags=["old"])
    oldest = Segment.objects.create(account=alice, name="Oldest", criteria={"tags": ["old"]})
    for n in range(100):
        Segment.objects.create(account=alice, name=f"Newer {n}", criteria={})
    page = owner_client.get(dash("messages/send/"), {"segment": oldest.pk})
    assert (oldest.pk, "Oldest (1 contact)") in page.context["form"].fields["segments"].choices
    fields = {"segments": [oldest.pk], "sender_id": "MIFUMO", "message": "Habari!"}
    fields["nonce"] = _form_nonce(owner_client)
    preview = owner_client.post(dash("messages/send/"), fields)
    assert preview.status_code == 200, preview.context["form"].errors
    assert preview.context["plan"].phones == ["+255712345678"]
    response = owner_client.post(dash("messages/send/"), {**fields, "step": "send"})
    assert response.status_code == 302
    assert Message.objects.get().recipient_count == 1


def test_another_accounts_segment_is_not_offered(
    owner_client: Client, alice: Account, bob: Account
) -> None:
    Segment.objects.create(account=alice, name="Ours", criteria={})
    theirs = Segment.objects.create(account=bob, name="Theirs", criteria={})
    page = owner_client.get(dash("messages/send/"), {"segment": theirs.pk})
    assert theirs.pk not in dict(page.context["form"].fields["segments"].choices)
    fields = {"segments": [theirs.pk], "sender_id": "MIFUMO", "message": "Habari!"}
    assert owner_client.post(dash("messages/send/"), fields).status_code == 400
