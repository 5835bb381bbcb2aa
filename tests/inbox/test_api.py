from __future__ import annotations

from typing import Any

import pytest

from contacts.models import Contact
from inbox.models import InboundMessage
from inbox.services import inbound_receive, number_assign
from integration.models import Account, Permission
from sms.models import Message
from tests.helpers import assert_envelope
from tests.inbox.conftest import NUMBER, PHONE


def _carrier_inbound(text: str, sender: str = PHONE) -> InboundMessage:
    message, _ = inbound_receive(carrier="beem", sender=sender, destination=NUMBER, text=text)
    return message


def test_list_is_newest_first_with_the_documented_fields(alice_number: str, api: Any) -> None:
    first = _carrier_inbound("Habari")
    second = _carrier_inbound("STOP", sender="+255754000001")
    body = assert_envelope(api.get("sms/inbound/"), 200)
    rows = body["data"]["inbound"]
    assert [r["inbound_id"] for r in rows] == [second.id, first.id]
    assert rows[1] == {
        "inbound_id": first.id,
        "from": PHONE,
        "to": NUMBER,
        "text": "Habari",
        "keyword": None,
        "action": None,
        "received_at": rows[1]["received_at"],
        "carrier": "beem",
        "contact_id": None,
        "in_reply_to": None,
    }
    assert rows[0]["action"] == "opt_out" and rows[0]["contact_id"].startswith("con_")
    assert body["data"]["pagination"] == {"page": 1, "per_page": 50, "total": 2, "pages": 1}


def test_list_filters(alice_number: str, api: Any) -> None:
    _carrier_inbound("Habari")
    stop = _carrier_inbound("STOP", sender="+255754000001")
    by_action = api.get("sms/inbound/", {"action": "opt_out"}).json()["data"]["inbound"]
    by_from = api.get("sms/inbound/", {"from": "0754000001"}).json()["data"]["inbound"]
    assert [r["inbound_id"] for r in by_action] == [stop.id]
    assert [r["inbound_id"] for r in by_from] == [stop.id]
    assert api.get("sms/inbound/", {"to": "15555"}).json()["data"]["inbound"] == []
    assert api.get("sms/inbound/", {"start_date": "2999-01-01"}).json()["data"]["inbound"] == []


@pytest.mark.parametrize(
    "params", [{"action": "dance"}, {"start_date": "yesterday"}, {"per_page": 101}, {"from": "x"}]
)
def test_list_refuses_bad_filters(alice_number: str, api: Any, params: dict[str, Any]) -> None:
    assert_envelope(api.get("sms/inbound/", params), 400, "VALIDATION_ERROR")


def test_detail_and_another_accounts_inbound_is_404_everywhere(
    alice: Account, bob: Account, alice_number: str, api: Any, api_for: Any
) -> None:
    message = _carrier_inbound("Hello")
    body = assert_envelope(api.get(f"sms/inbound/{message.id}/"), 200)
    assert body["data"]["inbound_id"] == message.id
    bobs = api_for(bob)
    assert_envelope(bobs.get(f"sms/inbound/{message.id}/"), 404, "NOT_FOUND")
    assert bobs.get("sms/inbound/").json()["data"]["inbound"] == []
    reply = bobs.post("sms/send/", {"message": "Hi", "reply_to": message.id})
    assert_envelope(reply, 404, "NOT_FOUND")
    assert_envelope(api.get("sms/inbound/inb_nope/"), 404, "NOT_FOUND")


def test_reply_to_sends_from_the_number_that_received_it(
    alice: Account, alice_number: str, api: Any
) -> None:
    message = _carrier_inbound("Nina swali")
    body = assert_envelope(
        api.post("sms/send/", {"message": "Karibu", "reply_to": message.id}), 200
    )
    data = body["data"]
    assert data["recipients"] == [PHONE] and data["sender_id"] == NUMBER
    assert Message.objects.get(pk=data["message_id"]).sender_id == NUMBER
    # The next message from that phone answers this one.
    assert _carrier_inbound("Asante").in_reply_to_id == data["message_id"]


def test_simulate_runs_the_whole_pipeline_for_a_test_key(
    alice: Account, alice_number: str, api_for: Any
) -> None:
    test = api_for(alice, Permission.WRITE, test=True)
    body = assert_envelope(
        test.post("sms/inbound/simulate/", {"from": "0712345678", "to": NUMBER, "text": "stop!"}),
        201,
    )
    data = body["data"]
    assert (data["from"], data["to"], data["action"], data["carrier"]) == (
        PHONE,
        NUMBER,
        "opt_out",
        "simulator",
    )
    assert Contact.objects.get(account=alice, phone_number=PHONE).opted_out
    reply = Message.objects.get(account=alice)
    assert reply.is_test and reply.cost == 0  # a test key's replies are free
    # The test key lists what it simulated; a live key does not see test traffic... and
    # vice versa for carrier traffic.
    assert [r["inbound_id"] for r in test.get("sms/inbound/").json()["data"]["inbound"]] == [
        data["inbound_id"]
    ]


def test_simulate_with_a_live_key_is_403(alice_number: str, api: Any) -> None:
    response = api.post("sms/inbound/simulate/", {"from": PHONE, "to": NUMBER, "text": "Hi"})
    assert_envelope(response, 403, "PERMISSION_DENIED")
    assert not InboundMessage.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"from": PHONE, "to": "+255799999999", "text": "Hi"},  # not the account's number
        {"from": PHONE, "to": "nope", "text": "Hi"},
        {"from": PHONE, "text": "Hi"},
        {"from": PHONE, "to": NUMBER, "text": "Hi", "extra": 1},
    ],
)
def test_simulate_refuses_bad_input(
    alice: Account, alice_number: str, api_for: Any, payload: dict[str, Any]
) -> None:
    test = api_for(alice, Permission.WRITE, test=True)
    assert_envelope(test.post("sms/inbound/simulate/", payload), 400, "VALIDATION_ERROR")
    assert not InboundMessage.objects.exists()


def test_simulate_on_a_shared_code_needs_the_accounts_keyword(
    alice: Account, bob: Account, api_for: Any
) -> None:
    number_assign(account=alice, number="15555", keyword="DUKA")
    number_assign(account=bob, number="15555", keyword="SHULE")
    test = api_for(alice, Permission.WRITE, test=True)
    # Alice cannot put a message into Bob's inbox through the shared code.
    refused = test.post("sms/inbound/simulate/", {"from": PHONE, "to": "15555", "text": "SHULE hi"})
    assert_envelope(refused, 400, "VALIDATION_ERROR")
    assert not InboundMessage.objects.exists()
    done = test.post("sms/inbound/simulate/", {"from": PHONE, "to": "15555", "text": "duka hi"})
    assert assert_envelope(done, 201)["data"]["keyword"] == "DUKA"


def test_simulate_needs_write(alice: Account, alice_number: str, api_for: Any) -> None:
    reader = api_for(alice, Permission.READ, test=True)
    response = reader.post("sms/inbound/simulate/", {"from": PHONE, "to": NUMBER, "text": "Hi"})
    assert_envelope(response, 403, "PERMISSION_DENIED")


def test_inbound_endpoints_are_in_the_schema(anon: Any) -> None:
    schema = anon.get("schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    prefix = "/api/integration/v1/"
    for path in ("sms/inbound/", "sms/inbound/{inbound_id}/", "sms/inbound/simulate/"):
        assert prefix + path in paths, sorted(paths)
    send = schema["components"]["schemas"]["SendInRequest"]["properties"]
    assert "reply_to" in send
