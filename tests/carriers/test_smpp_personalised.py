"""A personalised message through a real SMPP server: each recipient's own text, each in
its own alphabet and part count."""

from typing import Any

import pytest

from contacts.services import contact_create
from sms import dispatch
from sms.carriers.smpp import SmppCarrier
from sms.models import Recipient
from sms.services import message_send
from tests.carriers.smsc import Smsc
from tests.carriers.test_smpp import carrier, make_carrier, sink, smsc  # noqa: F401 - fixtures

ASHA = "+255712345678"
AYSE = "+255754000111"


@pytest.mark.django_db
def test_each_recipient_is_submitted_their_own_text_and_coding(
    alice: Any,
    carrier: SmppCarrier,  # noqa: F811 - the fixture
    smsc: Smsc,  # noqa: F811 - the fixture
) -> None:
    contact_create(account=alice, name="Asha", phone_number=ASHA)
    contact_create(account=alice, name="Ayşe", phone_number=AYSE)
    text = "Dear {{name}}, " + "x" * 60
    message = message_send(account=alice, text=text, recipients=[ASHA, AYSE]).message
    picked = dispatch.claim(message.id, 10)
    texts = dispatch.recipient_texts(message, [rid for rid, _ in picked])
    outbound = [
        dispatch.Item(rid, phone, message, ("smsc-test",), text=texts[rid]).outbound()
        for rid, phone in picked
    ]
    results = carrier.send_messages(outbound)
    assert all(result.accepted for result in results)
    by_phone: dict[str, list[Any]] = {}
    for submit in smsc.submits:
        by_phone.setdefault("+" + submit.destination_addr, []).append(submit)
    [asha] = by_phone[ASHA]
    assert asha.data_coding == 0x00 and asha.text == "Dear Asha, " + "x" * 60
    ayse = sorted(by_phone[AYSE], key=lambda p: p.segment[2])
    assert {p.data_coding for p in ayse} == {0x08}
    assert "".join(p.text for p in ayse) == "Dear Ayşe, " + "x" * 60
    segments = dict(Recipient.objects.values_list("phone", "segments"))
    assert segments == {ASHA: 1, AYSE: len(ayse)} == {ASHA: 1, AYSE: 2}
