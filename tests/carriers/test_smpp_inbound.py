"""Messages from phones over SMPP, against the local SMSC over TCP: decoded, reassembled,
stored through the inbound pipeline, and only then answered."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from contacts.models import Contact
from inbox.models import InboundMessage, InboundPart
from inbox.services import number_assign
from inbox.sinks import inbound_flush_stale_parts
from integration.models import Account
from integration.services import account_create
from sms.carriers.smpp import DeliverSm, SmppCarrier
from sms.carriers.smpp.inbound import decode_text, inbound_from_pdu, split_udh

from .smsc import ESME_ROK, Smsc, receipt_text
from .test_smpp import Sink

pytestmark = [pytest.mark.timeout(30), pytest.mark.django_db(transaction=True)]

ESME_RX_T_APPN = 0x64
SWAHILI = "Habari! Nimepokea ujumbe wenu kuhusu ada ya shule — asante sana 🙏. " * 3
LONG_GSM = "Naomba maelezo zaidi kuhusu bei ya mbolea na mbegu za mahindi msimu huu. " * 4


@pytest.fixture
def owner() -> Account:
    account = account_create(name="duka", balance="5000.00")
    number_assign(account=account, number="15555")
    return account


@pytest.fixture
def bound(make_carrier: Callable[..., SmppCarrier]) -> SmppCarrier:
    carrier = make_carrier()
    carrier.open()
    return carrier


def answered(smsc: Smsc, sequences: Sequence[int], status: int = ESME_ROK) -> bool:
    return smsc.wait_until(
        lambda: all(smsc.deliver_responses.get(s) == status for s in sequences), timeout=10
    )


def test_a_single_mo_is_stored_routed_and_answered(
    owner: Account, bound: SmppCarrier, smsc: Smsc
) -> None:
    sequences = smsc.deliver_mo("Stop!")
    assert answered(smsc, sequences)
    message = InboundMessage.objects.get()
    assert (message.sender, message.destination, message.text) == (
        "+255712345678",
        "15555",
        "Stop!",
    )
    assert (message.account_id, message.action, message.carrier) == (
        owner.pk,
        "opt_out",
        "smsc-test",
    )
    assert Contact.objects.get(account=owner).opted_out


@pytest.mark.parametrize("concatenation", ["udh8", "udh16", "sar"])
def test_a_three_part_ucs2_mo_is_reassembled(
    owner: Account, bound: SmppCarrier, smsc: Smsc, concatenation: str
) -> None:
    sequences = smsc.deliver_mo(
        SWAHILI,
        parts=3,
        concatenation=concatenation,
        reference=0x1234 if concatenation != "udh8" else 0x12,
    )
    assert len(sequences) == 3
    assert answered(smsc, sequences)
    message = InboundMessage.objects.get()
    assert message.text == SWAHILI and not message.incomplete
    assert message.raw["total"] == 3
    assert not InboundPart.objects.exists()


def test_a_multipart_mo_with_a_nul_character_is_stored_without_it(
    owner: Account, bound: SmppCarrier, smsc: Smsc
) -> None:
    sequences = smsc.deliver_mo("Habari\x00 " + SWAHILI, parts=3)
    assert answered(smsc, sequences)
    assert InboundMessage.objects.get().text == "Habari " + SWAHILI


def test_parts_out_of_order_and_repeated_make_one_message(
    owner: Account, bound: SmppCarrier, smsc: Smsc
) -> None:
    sequences = smsc.deliver_mo(LONG_GSM, parts=3, only=[3])
    sequences += smsc.deliver_mo(LONG_GSM, parts=3, only=[1])
    sequences += smsc.deliver_mo(LONG_GSM, parts=3, only=[1])  # the SMSC repeats a part
    assert answered(smsc, sequences)
    assert not InboundMessage.objects.exists()
    assert answered(smsc, smsc.deliver_mo(LONG_GSM, parts=3, only=[2]))
    assert InboundMessage.objects.get().text == LONG_GSM


def test_message_payload_and_data_sm_mo_are_stored(
    owner: Account, bound: SmppCarrier, smsc: Smsc
) -> None:
    in_payload = smsc.deliver_payload(LONG_GSM)
    as_data_sm = smsc.data_sm("Jambo €uro [ok]")
    assert answered(smsc, [in_payload, as_data_sm])
    texts = sorted(InboundMessage.objects.values_list("text", flat=True))
    assert texts == sorted([LONG_GSM, "Jambo €uro [ok]"])


def test_a_part_that_never_completes_is_stored_as_it_is_after_the_timeout(
    owner: Account, bound: SmppCarrier, smsc: Smsc
) -> None:
    assert answered(smsc, smsc.deliver_mo(SWAHILI, parts=3, only=[1, 3]))
    assert InboundPart.objects.count() == 2 and not InboundMessage.objects.exists()
    assert inbound_flush_stale_parts(older_than=3600) == 0  # not yet stale
    assert inbound_flush_stale_parts(older_than=0) == 1
    message = InboundMessage.objects.get()
    third = len(SWAHILI) // 3 + (len(SWAHILI) % 3 > 0)
    assert message.text == SWAHILI[:third] + SWAHILI[2 * third :]
    assert message.incomplete and message.raw["parts_received"] == [1, 3]
    assert message.account_id == owner.pk
    assert not InboundPart.objects.exists()


def test_a_receipt_and_an_mo_interleaved_on_one_bind(
    owner: Account, bound: SmppCarrier, smsc: Smsc, sink: Sink
) -> None:
    first = smsc.deliver_mo(LONG_GSM, parts=2, only=[1])
    receipt = smsc.deliver(receipt_text("A1", "DELIVRD"))
    second = smsc.deliver_mo(LONG_GSM, parts=2, only=[2])
    single = smsc.deliver_mo("Asante")
    assert answered(smsc, [*first, receipt, *second, *single])
    assert [r.carrier_message_id for r in sink.wait_for(1)] == ["a1"]
    assert sorted(InboundMessage.objects.values_list("text", flat=True)) == sorted(
        [LONG_GSM, "Asante"]
    )


def test_nothing_is_lost_when_the_bind_is_cut_between_parts(
    owner: Account, bound: SmppCarrier, smsc: Smsc
) -> None:
    assert answered(smsc, smsc.deliver_mo(SWAHILI, parts=3, only=[1]))
    smsc.drop_connections()
    assert smsc.wait_until(lambda: len(smsc.binds) == 2, timeout=10)
    assert answered(smsc, smsc.deliver_mo(SWAHILI, parts=3, only=[2, 3]))
    assert InboundMessage.objects.get().text == SWAHILI


def refusing_handler(carrier: str, pdus: Sequence[DeliverSm]) -> None:
    raise RuntimeError("database unavailable")


def test_an_mo_that_cannot_be_stored_is_refused_for_redelivery(
    owner: Account, make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    make_carrier(INBOUND_HANDLER=f"{__name__}.refusing_handler").open()
    sequences = smsc.deliver_mo("STOP")
    assert answered(smsc, sequences, ESME_RX_T_APPN)
    time.sleep(0.1)
    assert not InboundMessage.objects.exists()


def test_an_mo_to_no_account_is_kept(bound: SmppCarrier, smsc: Smsc) -> None:
    assert answered(smsc, smsc.deliver_mo("Hello", destination_addr="255799999999"))
    message = InboundMessage.objects.get()
    assert message.account_id is None and message.destination == "+255799999999"


# -- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "coding", "text"),
    [
        (b"\x00\x1b\x65", 0x00, "@€"),  # GSM default alphabet, with an extension character
        (b"Hello", 0x01, "Hello"),  # IA5
        ("Karibu Zürich".encode("latin-1"), 0x03, "Karibu Zürich"),
        ("Habari 🙏".encode("utf-16-be"), 0x08, "Habari 🙏"),
        (b"caf\xe9", 0x00, "café"),  # Latin-1 under the default coding: not lost
        (b"\x00", 0xF0, "@"),  # message class group, 7-bit
    ],
)
def test_data_codings(payload: bytes, coding: int, text: str) -> None:
    assert decode_text(payload, coding) == text


def test_udh_with_other_elements_before_the_concatenation() -> None:
    header = bytes([0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x2A, 0x02, 0x01])
    found, rest = split_udh(header + b"Hi")
    assert found is not None and (found.reference, found.total, found.part) == (0x2A, 2, 1)
    assert rest == b"Hi"


def test_a_broken_udh_is_stored_as_it_came(owner: Account, bound: SmppCarrier, smsc: Smsc) -> None:
    sequence = smsc.deliver(
        b"\x09\x00\x03Hi", esm_class=0x40, destination_addr="15555"
    )  # header says 9 octets
    assert answered(smsc, [sequence])
    message = InboundMessage.objects.get()
    assert message.raw["unreadable"] and message.text.endswith("Hi")


def test_part_one_of_one_is_a_whole_message() -> None:
    pdu = DeliverSm("255712345678", "15555", 0x40, 0, bytes([5, 0, 3, 1, 1, 1]) + b"Hi", {})
    item = inbound_from_pdu(pdu, carrier="c")
    assert item.concatenation is None and item.text == "Hi"
