"""Two-way messaging in the dashboard: conversations with unread counts, replies, the
opt-out history and its CSV, keywords and automatic replies, numbers. Members read; owners
and admins change; another account's conversation is a 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from contacts.models import Contact
from inbox.models import AutoReply, InboundMessage, Keyword
from inbox.services import inbound_receive, number_assign
from integration.models import Account
from sms.models import Message
from sms.services import message_send
from tests.dashboard.support import dash, downloaded

pytestmark = pytest.mark.django_db

NUMBER = "+255700000100"
PHONE = "+255712345678"


@pytest.fixture
def received(alice: Account) -> list[InboundMessage]:
    number_assign(account=alice, number=NUMBER)
    messages = []
    for sender, text in [(PHONE, "Habari"), ("+255754000001", "STOP"), (PHONE, "Bei gani?")]:
        message, _ = inbound_receive(carrier="beem", sender=sender, destination=NUMBER, text=text)
        messages.append(message)
    return messages


def reply(client: Client, text: str) -> Any:
    """Post a reply as the page's form does, with the form's one-time token."""
    nonce = client.get(dash(f"inbox/{PHONE}/")).context["form"]["nonce"].value()
    return client.post(dash(f"inbox/{PHONE}/"), {"text": text, "nonce": nonce})


def test_the_inbox_lists_conversations_newest_first_with_unread_counts(
    owner_client: Client, received: list[InboundMessage]
) -> None:
    response = owner_client.get(dash("inbox/"))
    rows = list(response.context["page"].object_list)
    assert [(c.phone, c.received, c.unread) for c in rows] == [
        (PHONE, 2, 2),
        ("+255754000001", 1, 1),
    ]
    assert response.context["unread"] == 3
    assert b"2 new" in response.content


def test_a_conversation_interleaves_received_and_sent_newest_first_and_marks_read(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    reply(owner_client, "Elfu kumi")
    response = owner_client.get(dash(f"inbox/{PHONE}/"))
    entries = response.context["entries"]
    assert [(e.inbound, e.text) for e in entries] == [
        (False, "Elfu kumi"),
        (True, "Bei gani?"),
        (True, "Habari"),
    ]
    assert not InboundMessage.objects.filter(sender=PHONE, read_at=None).exists()
    assert InboundMessage.objects.filter(sender="+255754000001", read_at=None).exists()


def test_a_conversation_shows_what_the_phone_received_of_a_personalised_message(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    Contact.objects.create(account=alice, name="Asha", phone_number=PHONE)
    message_send(account=alice, text="Habari {{name}}", recipients=[PHONE])
    entries = owner_client.get(dash(f"inbox/{PHONE}/")).context["entries"]
    assert [e.text for e in entries if not e.inbound] == ["Habari Asha"]


def test_a_reply_goes_from_the_number_and_is_charged(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    before = Account.objects.get(pk=alice.pk).balance
    response = reply(owner_client, "Karibu")
    assert response.status_code == 302
    sent = Message.objects.get(account=alice, text="Karibu")
    assert sent.sender_id == NUMBER and sent.source == Message.Source.DASHBOARD
    assert Account.objects.get(pk=alice.pk).balance == before - sent.cost


def test_an_empty_reply_is_refused_on_the_page(
    owner_client: Client, received: list[InboundMessage]
) -> None:
    response = reply(owner_client, "")
    assert response.status_code == 400
    assert not Message.objects.filter(text="").exists()


def test_a_reply_without_balance_says_so(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    Account.objects.filter(pk=alice.pk).update(balance=0)
    response = reply(owner_client, "Karibu")
    assert response.status_code == 400
    assert "balance" in response.content.decode().lower()


def test_a_suspended_account_cannot_reply(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    Account.objects.filter(pk=alice.pk).update(status=Account.Status.SUSPENDED)
    before = Account.objects.get(pk=alice.pk).balance
    response = reply(owner_client, "Karibu")
    assert response.status_code == 400
    assert "suspended" in response.content.decode()
    assert not Message.objects.filter(account=alice, text="Karibu").exists()
    assert Account.objects.get(pk=alice.pk).balance == before


def test_a_reply_sent_again_is_not_sent_or_charged_twice(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    nonce = owner_client.get(dash(f"inbox/{PHONE}/")).context["form"]["nonce"].value()
    fields = {"text": "Karibu", "nonce": nonce}
    # A double click: the second request read the session before the first saved it.
    session = Session.objects.get(session_key=owner_client.session.session_key)
    as_read = session.session_data
    assert owner_client.post(dash(f"inbox/{PHONE}/"), fields).status_code == 302
    Session.objects.filter(pk=session.pk).update(session_data=as_read)
    again = owner_client.post(dash(f"inbox/{PHONE}/"), fields, follow=True)
    assert "That reply was already sent once" in again.content.decode()
    # A reload after the first was saved.
    owner_client.post(dash(f"inbox/{PHONE}/"), fields)
    assert Message.objects.filter(account=alice, text="Karibu").count() == 1


def test_with_the_cache_down_the_session_still_refuses_a_resubmitted_reply(
    owner_client: Client,
    alice: Account,
    received: list[InboundMessage],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def down(*args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("cache down")

    monkeypatch.setattr("mifumo.once.cache.add", down)
    nonce = owner_client.get(dash(f"inbox/{PHONE}/")).context["form"]["nonce"].value()
    fields = {"text": "Karibu", "nonce": nonce}
    assert owner_client.post(dash(f"inbox/{PHONE}/"), fields).status_code == 302
    owner_client.post(dash(f"inbox/{PHONE}/"), fields)
    assert Message.objects.filter(account=alice, text="Karibu").count() == 1


def test_a_reply_without_its_token_is_refused(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    response = owner_client.post(dash(f"inbox/{PHONE}/"), {"text": "Karibu"})
    assert response.status_code == 400
    assert not Message.objects.filter(account=alice, text="Karibu").exists()


def test_members_read_but_cannot_reply_or_change_settings(
    member_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    assert member_client.get(dash(f"inbox/{PHONE}/")).status_code == 200
    assert member_client.get(dash("inbox/keywords/")).status_code == 200
    assert member_client.post(dash(f"inbox/{PHONE}/"), {"text": "x"}).status_code == 403
    assert (
        member_client.post(
            dash("inbox/keywords/"), {"word": "BASI", "action": "opt_out"}
        ).status_code
        == 403
    )
    assert member_client.post(dash("inbox/replies/help/"), {"text": "x"}).status_code == 403
    assert not Keyword.objects.exists() and not AutoReply.objects.exists()
    assert not Message.objects.filter(account=alice, text="x").exists()


def test_another_accounts_conversation_is_404(
    bob: Account, make_user: Any, received: list[InboundMessage]
) -> None:
    client = Client()
    client.force_login(make_user("juma", bob))
    assert client.get(dash(f"inbox/{PHONE}/")).status_code == 404
    assert client.post(dash(f"inbox/{PHONE}/"), {"text": "hi"}).status_code == 404
    assert list(client.get(dash("inbox/")).context["page"].object_list) == []
    assert not Message.objects.filter(account=bob).exists()


def test_the_opt_out_history_and_its_csv(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    contact = Contact.objects.get(account=alice, phone_number="+255754000001")
    owner_client.post(dash(f"contacts/{contact.pk}/opt-in/"))
    page = owner_client.get(dash("inbox/opt-outs/"))
    history = [(c.opted_out, c.source) for c in page.context["page"].object_list]
    assert history == [(False, "dashboard"), (True, "keyword")]
    lines = downloaded(owner_client.get(dash("inbox/opt-outs.csv"))).splitlines()
    assert lines[0] == "time,phone,name,change,source,inbound_id,detail"
    assert [line.split(",")[3:5] for line in lines[1:]] == [
        ["opted_in", "dashboard"],
        ["opted_out", "keyword"],
    ]
    assert lines[2].split(",")[5] == received[1].id


def test_keywords_are_added_and_removed_and_refused_when_standard(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    assert (
        owner_client.post(
            dash("inbox/keywords/"), {"word": "basi!", "action": "opt_out"}
        ).status_code
        == 302
    )
    keyword = Keyword.objects.get(account=alice)
    assert (keyword.word, keyword.action) == ("BASI", "opt_out")
    again = owner_client.post(dash("inbox/keywords/"), {"word": "BASI", "action": "help"})
    standard = owner_client.post(dash("inbox/keywords/"), {"word": "stop", "action": "help"})
    two = owner_client.post(dash("inbox/keywords/"), {"word": "two words", "action": "help"})
    assert (again.status_code, standard.status_code, two.status_code) == (400, 400, 400)
    assert "standard keyword" in standard.content.decode()
    owner_client.post(dash(f"inbox/keywords/{keyword.pk}/delete/"))
    assert not Keyword.objects.exists()
    assert owner_client.post(dash(f"inbox/keywords/{keyword.pk}/delete/")).status_code == 404


def test_auto_replies_are_edited_and_turned_off(
    owner_client: Client, alice: Account, received: list[InboundMessage]
) -> None:
    owner_client.post(dash("inbox/replies/help/"), {"text": "Piga 0800", "enabled": "on"})
    owner_client.post(dash("inbox/replies/opt_out/"), {"text": ""})
    inbound_receive(carrier="beem", sender="+255765000002", destination=NUMBER, text="help")
    inbound_receive(carrier="beem", sender="+255765000003", destination=NUMBER, text="stop")
    sent = list(Message.objects.filter(account=alice).values_list("text", flat=True))
    assert sent.count("Piga 0800") == 1
    assert Contact.objects.get(phone_number="+255765000003").opted_out
    too_long = owner_client.post(dash("inbox/replies/help/"), {"text": "x" * 300, "enabled": "on"})
    assert too_long.status_code == 400
    assert owner_client.post(dash("inbox/replies/dance/"), {"text": "x"}).status_code == 404


def test_the_numbers_page_lists_the_accounts_numbers_only(
    owner_client: Client, alice: Account, bob: Account
) -> None:
    number_assign(account=alice, number="15555", keyword="DUKA")
    number_assign(account=bob, number="15555", keyword="SHULE")
    page = owner_client.get(dash("inbox/numbers/"))
    assert [(n.number, n.keyword) for n in page.context["numbers"]] == [("15555", "DUKA")]
    assert b"SHULE" not in page.content
