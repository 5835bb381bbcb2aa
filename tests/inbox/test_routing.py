from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from inbox.models import Action, InboundMessage, Number
from inbox.services import NumberError, inbound_receive, number_assign
from integration.models import Account
from sms.models import Message, Recipient
from tests.helpers import Api

PHONE = "+255712345678"


def receive(destination: str, text: str, **kw: Any) -> InboundMessage:
    message, _ = inbound_receive(
        carrier="locmem", sender=kw.pop("sender", PHONE), destination=destination, text=text, **kw
    )
    return message


def test_a_long_number_routes_to_its_account(alice: Account) -> None:
    number_assign(account=alice, number="0700000100")
    message = receive("255700000100", "Habari")
    assert message.account == alice
    assert message.destination == "+255700000100"
    assert message.keyword == ""
    assert message.id.startswith("inb_")


def test_a_shared_code_routes_by_first_word(alice: Account, bob: Account) -> None:
    number_assign(account=alice, number="15555", keyword="duka")
    number_assign(account=bob, number="15555", keyword="SHULE")
    to_bob = receive("15555", "shule ada imelipwa")
    to_alice = receive("15555", "Duka, stop!")
    assert (to_bob.account, to_bob.keyword, to_bob.action) == (bob, "SHULE", "")
    assert (to_alice.account, to_alice.keyword, to_alice.action) == (alice, "DUKA", Action.OPT_OUT)


def test_a_shared_code_matches_keywords_on_the_text_after_the_routing_word(alice: Account) -> None:
    number_assign(account=alice, number="15555", keyword="DUKA")
    assert receive("15555", "DUKA STOP").action == Action.OPT_OUT
    assert receive("15555", "DUKA please stop").action == ""
    # Without the routing word the keyword goes nowhere: kept for operators.
    unrouted = receive("15555", "STOP")
    assert unrouted.account is None and unrouted.action == ""


def test_an_unknown_number_is_kept_with_no_account(db: None) -> None:
    message = receive("+255799999999", "Hello?")
    stored = InboundMessage.objects.get(pk=message.pk)
    assert stored.account is None and stored.text == "Hello?"


def test_a_redelivered_message_is_stored_once(alice: Account) -> None:
    number_assign(account=alice, number="+255700000100")
    first, created = inbound_receive(
        carrier="c1", sender=PHONE, destination="+255700000100", text="STOP", carrier_message_id="9"
    )
    again, created_again = inbound_receive(
        carrier="c1", sender=PHONE, destination="+255700000100", text="STOP", carrier_message_id="9"
    )
    assert created and not created_again and again.pk == first.pk
    assert InboundMessage.objects.count() == 1
    assert Message.objects.filter(account=alice).count() == 1  # one confirmation, not two
    other, created_other = inbound_receive(
        carrier="c2", sender=PHONE, destination="+255700000100", text="hi", carrier_message_id="9"
    )
    assert created_other and other.pk != first.pk


def test_in_reply_to_is_the_latest_message_to_that_phone_from_that_number(
    alice: Account, api: Any
) -> None:
    number_assign(account=alice, number="+255700000100")
    sent = api.post(
        "sms/send/", {"message": "Rate us 1-5", "recipients": [PHONE], "sender_id": "+255700000100"}
    ).json()["data"]
    api.post("sms/send/", {"message": "Other", "recipients": [PHONE]})  # from MIFUMO
    assert receive("+255700000100", "5").in_reply_to_id == sent["message_id"]
    Recipient.objects.filter(message_id=sent["message_id"]).update(
        created_at=timezone.now() - timedelta(days=8)
    )
    assert receive("+255700000100", "5").in_reply_to_id is None


def test_in_reply_to_passes_over_what_the_phone_was_never_sent(alice: Account, api: Any) -> None:
    number_assign(account=alice, number="+255700000100")
    body = {"message": "Rate us 1-5", "recipients": [PHONE], "sender_id": "+255700000100"}
    sent = api.post("sms/send/", body).json()["data"]
    later = (timezone.now() + timedelta(days=3)).isoformat()
    scheduled = api.post("sms/send/", {**body, "schedule_time": later}).json()["data"]
    assert scheduled["status"] == "scheduled"
    assert receive("+255700000100", "5").in_reply_to_id == sent["message_id"]
    api.post(f"sms/{scheduled['message_id']}/cancel/")
    assert receive("+255700000100", "5").in_reply_to_id == sent["message_id"]


def test_in_reply_to_keeps_test_and_live_traffic_apart(
    alice: Account, api: Any, make_key: Any
) -> None:
    number_assign(account=alice, number="+255700000100")
    sandbox = make_key(alice, test=True)
    test_api = Api(sandbox.raw)
    body = {"message": "Rate us 1-5", "recipients": [PHONE], "sender_id": "+255700000100"}
    live = api.post("sms/send/", body).json()["data"]
    assert receive("+255700000100", "5", api_key=sandbox.api_key).in_reply_to_id is None
    test = test_api.post("sms/send/", body).json()["data"]
    assert test["test"] is True
    answer = receive("+255700000100", "5", api_key=sandbox.api_key)
    assert answer.is_test and answer.in_reply_to_id == test["message_id"]
    assert receive("+255700000100", "5").in_reply_to_id == live["message_id"]


def test_assign_number_command_says_already_for_a_repeat(alice: Account, capsys: Any) -> None:
    call_command("assign_number", "alice", "15555", "--keyword", "duka")
    call_command("assign_number", "alice", "15555", "--keyword", "DUKA")
    out = capsys.readouterr().out
    assert "now receives on 15555 (keyword DUKA)" in out
    assert "already receives on 15555 (keyword DUKA)" in out
    assert Number.objects.count() == 1


def test_assign_number_refuses_a_clash(alice: Account, bob: Account) -> None:
    call_command("assign_number", "alice", "15555", "--keyword", "DUKA")
    with pytest.raises(CommandError, match="held by another account"):
        call_command("assign_number", "bob", "15555", "--keyword", "duka")
    with pytest.raises(CommandError, match="shared by other accounts"):
        call_command("assign_number", "bob", "15555")
    call_command("assign_number", "bob", "+255700000100")
    with pytest.raises(CommandError, match="another account alone"):
        call_command("assign_number", "alice", "+255700000100", "--keyword", "X")
    assert list(Number.objects.values_list("account__name", "number", "keyword")) == [
        ("bob", "+255700000100", ""),
        ("alice", "15555", "DUKA"),
    ]


@pytest.mark.parametrize("bad", ["12", "abc", "+12", "0000000000000000000"])
def test_assign_number_refuses_what_is_not_a_number(alice: Account, bad: str) -> None:
    with pytest.raises(NumberError):
        number_assign(account=alice, number=bad)


def test_assign_number_refuses_a_keyword_of_two_words(alice: Account) -> None:
    with pytest.raises(NumberError, match="one word"):
        number_assign(account=alice, number="15555", keyword="two words")
