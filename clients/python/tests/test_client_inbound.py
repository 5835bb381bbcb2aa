"""Two-way messaging through the client against a real server: simulated inbound messages,
listing and filtering them, replying to one, and the message.received and contact.opted_out
/ opted_in webhooks verified and read into typed events."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from mifumo_client import Mifumo, NotFoundError, PermissionDeniedError, ValidationError, webhooks
from mifumo_client.models import InboundMessage
from mifumo_client.webhooks import ContactOptEvent, MessageReceivedEvent
from mifumo_server import Server

from inbox.services import number_assign
from integration.models import Account
from tests.webhooks.receiver import Received, Receiver
from tests.workers import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def number(account: Account) -> str:
    """A long number of the account's own (numbers are unique across accounts)."""
    value = f"+25570{random.randrange(10**7):07d}"
    number_assign(account=account, number=value)
    return value


@pytest.fixture
def test_client(server: Server, account: Account, make_key: Callable[..., str]) -> Iterator[Mifumo]:
    with Mifumo(make_key(account, test=True), server.url) as mifumo:
        yield mifumo


def arrived(receiver: Receiver, event: str, count: int = 1) -> list[Received]:
    def matching() -> list[Received]:
        return [r for r in receiver.on("/inbox") if r.header("X-Mifumo-Event") == event]

    wait_until(lambda: len(matching()) >= count, timeout=60, interval=0.1)
    return matching()


def test_simulated_messages_are_listed_filtered_and_read_back(
    test_client: Mifumo, number: str
) -> None:
    first = test_client.inbound.simulate("0712000205", number, "Habari, nina swali")
    assert isinstance(first, InboundMessage)
    assert first.inbound_id.startswith("inb_")
    assert (first.from_, first.to, first.text) == ("+255712000205", number, "Habari, nina swali")
    assert first.action is None and first.received_at.tzinfo is not None
    stop = test_client.inbound.simulate("+255712000215", number, "STOP")
    assert stop.action == "opt_out"

    pages = list(test_client.inbound.list(page_size=1).pages())
    assert [page.total for page in pages] == [2, 2]
    assert [m.inbound_id for page in pages for m in page.items] == [
        stop.inbound_id,
        first.inbound_id,
    ]
    assert [m.inbound_id for m in test_client.inbound.list(from_="0712000205")] == [
        first.inbound_id
    ]
    assert [m.inbound_id for m in test_client.inbound.list(action="opt_out")] == [stop.inbound_id]
    assert test_client.inbound.get(first.inbound_id) == first


def test_inbound_errors_name_what_is_wrong(
    client: Mifumo, test_client: Mifumo, number: str
) -> None:
    with pytest.raises(PermissionDeniedError):
        client.inbound.simulate("0712000225", number, "Habari")
    with pytest.raises(ValidationError) as not_ours:
        test_client.inbound.simulate("0712000225", "+255700000001", "Habari")
    assert "to" in not_ours.value.details
    with pytest.raises(ValidationError) as bad_filter:
        list(test_client.inbound.list(from_="not a phone"))
    assert "from" in bad_filter.value.details
    with pytest.raises(NotFoundError):
        test_client.inbound.get("inb_0000000000000000000000000")


def test_a_reply_goes_to_the_sender_of_the_inbound_message(
    test_client: Mifumo, number: str
) -> None:
    question = test_client.inbound.simulate("0712000235", number, "Bei gani?")
    reply = test_client.sms.send("Elfu kumi", reply_to=question.inbound_id)
    assert reply.recipients == ["+255712000235"] and reply.test is True
    with pytest.raises(NotFoundError):
        test_client.sms.send("Hapana", reply_to="inb_0000000000000000000000000")


def test_received_and_opt_out_events_verify_and_parse(
    test_client: Mifumo, number: str, receiver: Receiver
) -> None:
    endpoint = test_client.webhooks.create(
        receiver.url_for("/inbox"),
        events=["message.received", "contact.opted_out", "contact.opted_in"],
    )
    assert endpoint.secret is not None
    contact = test_client.contacts.create("Amina", "0712000245")

    stop = test_client.inbound.simulate("0712000245", number, "STOP")
    (received,) = arrived(receiver, "message.received")
    event = webhooks.construct_event(
        endpoint.secret, received.header("X-Mifumo-Signature"), received.body
    )
    assert isinstance(event, MessageReceivedEvent)
    assert (event.inbound_id, event.from_, event.text, event.action) == (
        stop.inbound_id,
        "+255712000245",
        "STOP",
        "opt_out",
    )
    assert event.contact_id == contact.id

    (opted_out,) = arrived(receiver, "contact.opted_out")
    out_event = webhooks.construct_event(
        endpoint.secret, opted_out.header("X-Mifumo-Signature"), opted_out.body
    )
    assert isinstance(out_event, ContactOptEvent)
    assert (out_event.contact_id, out_event.phone, out_event.inbound_id) == (
        contact.id,
        "+255712000245",
        stop.inbound_id,
    )
    assert test_client.contacts.get(contact.id).opted_out is True

    test_client.contacts.opt_in(contact.id)
    (opted_in,) = arrived(receiver, "contact.opted_in")
    in_event = webhooks.parse_event(opted_in.body)
    assert isinstance(in_event, ContactOptEvent)
    assert (in_event.event, in_event.contact_id, in_event.inbound_id) == (
        "contact.opted_in",
        contact.id,
        None,
    )
