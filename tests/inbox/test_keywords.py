from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction

from contacts.models import Contact, OptOutChange
from contacts.services import contact_set_opted_out
from inbox import keywords
from inbox.models import Action, AutoReply, InboundMessage, Keyword
from inbox.services import inbound_receive, inbound_receive_many, number_assign
from integration.models import Account
from sms.carriers.inbound import InboundSms
from sms.models import Message
from tests.inbox.conftest import NUMBER, PHONE


def receive(text: str, **kw: Any) -> InboundMessage:
    message, _ = inbound_receive(
        carrier="locmem", sender=kw.pop("sender", PHONE), destination=NUMBER, text=text, **kw
    )
    return message


@pytest.mark.parametrize("word", keywords.OPT_OUT_WORDS)
def test_every_opt_out_word_opts_the_phone_out(
    alice: Account, alice_number: str, word: str
) -> None:
    message = receive(word)
    assert message.action == Action.OPT_OUT
    contact = Contact.objects.get(account=alice, phone_number=PHONE)
    assert contact.opted_out
    assert message.contact_id == contact.id
    change = OptOutChange.objects.get(contact=contact)
    assert (change.opted_out, change.source, change.inbound_id) == (True, "keyword", message.id)


@pytest.mark.parametrize("word", keywords.OPT_IN_WORDS)
def test_every_opt_in_word_opts_the_phone_back_in(
    alice: Account, alice_number: str, word: str
) -> None:
    receive("STOP")
    message = receive(word)
    assert message.action == Action.OPT_IN
    assert not Contact.objects.get(account=alice, phone_number=PHONE).opted_out
    history = list(
        OptOutChange.objects.order_by("created_at", "id").values_list("opted_out", flat=True)
    )
    assert history == [True, False]


@pytest.mark.parametrize("word", keywords.HELP_WORDS)
def test_every_help_word_is_help_and_changes_nothing(
    alice: Account, alice_number: str, word: str
) -> None:
    message = receive(word)
    assert message.action == Action.HELP
    assert not Contact.objects.filter(account=alice).exists()


@pytest.mark.parametrize(
    "text", ["stop", "Stop", " STOP ", "stop!", "Stop.", "sitisha!!", "'acha'"]
)
def test_case_and_punctuation_do_not_matter(alice_number: str, text: str) -> None:
    assert receive(text).action == Action.OPT_OUT


@pytest.mark.parametrize(
    "text", ["please stop sending me these", "stop it now", "non-stop deals", "STOPPED", ""]
)
def test_a_sentence_that_merely_contains_stop_asks_for_nothing(
    alice: Account, alice_number: str, text: str
) -> None:
    message = receive(text)
    assert message.action == ""
    assert not Contact.objects.filter(account=alice, opted_out=True).exists()


def test_opt_out_creates_no_duplicate_contact_and_keeps_the_existing_one(
    alice: Account, alice_number: str
) -> None:
    existing = Contact.objects.create(account=alice, name="Asha", phone_number=PHONE)
    receive("STOP")
    receive("STOP")
    existing.refresh_from_db()
    assert existing.opted_out and existing.name == "Asha"
    assert Contact.objects.filter(account=alice).count() == 1
    assert OptOutChange.objects.filter(contact=existing).count() == 1  # the repeat changes nothing


def test_an_opted_out_phone_is_skipped_by_later_sends(
    alice: Account, alice_number: str, api: Any
) -> None:
    receive("STOP")
    response = api.post("sms/send/", {"message": "Offer", "recipients": [PHONE, "+255712345679"]})
    body = response.json()
    assert body["data"]["skipped"] == [{"phone": PHONE, "reason": "opted_out"}], body


def test_account_keywords_extend_the_lists(alice: Account, alice_number: str) -> None:
    Keyword.objects.create(account=alice, word="BASI", action=Action.OPT_OUT)
    assert receive("basi").action == Action.OPT_OUT


def test_auto_reply_goes_from_the_receiving_number_and_is_charged(
    alice: Account, alice_number: str
) -> None:
    before = Account.objects.get(pk=alice.pk).balance
    receive("STOP")
    reply = Message.objects.get(account=alice)
    assert reply.source == Message.Source.AUTO_REPLY
    assert reply.sender_id == NUMBER
    assert reply.text == keywords.DEFAULT_REPLIES["opt_out"]
    assert reply.recipients.get().phone == PHONE
    assert Account.objects.get(pk=alice.pk).balance == before - reply.cost
    assert reply.cost > 0


def test_help_reply_uses_the_accounts_own_text(alice: Account, alice_number: str) -> None:
    AutoReply.objects.create(account=alice, action=Action.HELP, text="Call 0800 / Piga 0800")
    receive("HELP")
    assert Message.objects.get(account=alice).text == "Call 0800 / Piga 0800"


def test_a_reply_turned_off_is_not_sent(alice: Account, alice_number: str) -> None:
    AutoReply.objects.create(account=alice, action=Action.OPT_OUT, enabled=False)
    receive("STOP")
    assert not Message.objects.filter(account=alice).exists()
    assert Contact.objects.get(account=alice).opted_out


def test_without_balance_the_opt_out_is_recorded_and_the_reply_skipped(
    make_account: Any,
) -> None:
    poor = make_account("poor", balance=Decimal("0.00"))
    number_assign(account=poor, number=NUMBER)
    message = receive("STOP")
    assert message.action == Action.OPT_OUT
    assert Contact.objects.get(account=poor).opted_out
    assert not Message.objects.filter(account=poor).exists()
    assert Account.objects.get(pk=poor.pk).balance == Decimal("0.00")


def test_a_suspended_account_records_the_opt_out_and_sends_no_reply(
    alice: Account, alice_number: str
) -> None:
    Account.objects.filter(pk=alice.pk).update(status=Account.Status.SUSPENDED)
    assert receive("STOP").action == Action.OPT_OUT
    assert Contact.objects.get(account=alice).opted_out
    assert not Message.objects.filter(account=alice).exists()
    assert Account.objects.get(pk=alice.pk).balance == alice.balance


def test_plain_text_sends_no_reply(alice: Account, alice_number: str) -> None:
    receive("Asante sana")
    assert not Message.objects.filter(account=alice).exists()


def test_an_opt_out_then_an_opt_in_in_one_batch_leave_the_phone_opted_in(
    alice: Account, alice_number: str
) -> None:
    """A backlog delivered at once: the opt-in reads the contact the opt-out made, not the
    batch's copy from before it."""
    inbound_receive_many(
        items=[
            InboundSms("locmem", PHONE, NUMBER, "STOP", carrier_message_id="m1"),
            InboundSms("locmem", PHONE, NUMBER, "START", carrier_message_id="m2"),
        ]
    )
    assert not Contact.objects.get(account=alice, phone_number=PHONE).opted_out
    history = OptOutChange.objects.order_by("created_at", "id").values_list("opted_out", flat=True)
    assert list(history) == [True, False]


def test_an_opt_out_from_an_alphanumeric_sender_is_stored_and_opts_nobody_out(
    alice: Account, alice_number: str
) -> None:
    """A sender no phone number can be (too long for one, too): the message is kept, the
    rest of its batch with it, and no contact is made."""
    stored = inbound_receive_many(
        items=[
            InboundSms("locmem", "MIFUMO-ALERTS-SERVICE", NUMBER, "STOP", carrier_message_id="a"),
            InboundSms("locmem", PHONE, NUMBER, "Habari", carrier_message_id="b"),
        ]
    )
    assert [created for _, created in stored] == [True, True]
    assert InboundMessage.objects.count() == 2
    assert not Contact.objects.filter(account=alice).exists()


@pytest.mark.django_db(transaction=True)
def test_an_opt_out_waits_for_an_opt_in_being_made_and_wins(
    alice: Account, alice_number: str
) -> None:
    """START and STOP from one phone handled at once by two workers: the STOP's worker read
    the contact before the START committed. It reads it again under the START's lock."""
    receive("STOP")
    contact = Contact.objects.get(account=alice, phone_number=PHONE)
    locked, release = threading.Event(), threading.Event()

    def opt_in_slowly() -> None:
        try:
            with transaction.atomic():
                mine = Contact.objects.select_for_update().get(pk=contact.pk)
                locked.set()
                release.wait(10)
                contact_set_opted_out(contact=mine, opted_out=False, source="keyword")
        finally:
            connection.close()

    worker = threading.Thread(target=opt_in_slowly)
    worker.start()
    assert locked.wait(10)
    threading.Timer(0.3, release.set).start()
    receive("STOP", carrier_message_id="second")
    worker.join(10)
    assert Contact.objects.get(pk=contact.pk).opted_out
