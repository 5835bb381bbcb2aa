"""Personalised sends: each recipient's text rendered, measured, priced, stored and sent."""

import tracemalloc
from decimal import Decimal

import pytest

from contacts.models import Contact
from contacts.services import contact_create, contact_set_opted_out
from integration.models import LedgerEntry
from message_templates.models import MessageTemplate
from sms import dispatch
from sms.models import Message, Recipient
from sms.pricing import price_phones
from tests.helpers import assert_envelope

ASHA = "+255712345678"
AYSE = "+255754000111"
JUMA = "+255689000222"
STRANGER = "+255713000333"


def contact(account, phone, name, **fields):
    return contact_create(account=account, name=name, phone_number=phone, custom_fields=fields)


def send(api, **body):
    return api.post("sms/send/", body)


def balance(account):
    account.refresh_from_db()
    return account.balance


def nothing_charged(alice):
    assert not Message.objects.exists()
    assert not LedgerEntry.objects.filter(account=alice, kind="debit").exists()
    assert balance(alice) == Decimal("5000.00")


@pytest.fixture
def people(alice):
    contact(alice, ASHA, "Asha", order_id="1043", city="Arusha")
    # "ş" is not in the GSM alphabet: Ayşe's text goes as UCS-2.
    contact(alice, AYSE, "Ayşe", order_id="77")
    contact(alice, JUMA, "Juma", order_id="5", city="Moshi")


@pytest.mark.django_db
def test_each_recipient_gets_and_pays_for_their_own_text(api, alice, people):
    text = "Habari {{ name }}, your order {{order_id}} is ready in {{city|Dar es Salaam}}"
    data = assert_envelope(
        send(api, message=text, recipients=[ASHA, STRANGER, JUMA]), 400, "VALIDATION_ERROR"
    )
    # A stranger has only a phone: name and order_id are missing for them.
    assert data["details"]["missing"] == [{"phone": STRANGER, "fields": ["name", "order_id"]}]
    assert data["details"]["missing_count"] == 1
    nothing_charged(alice)

    data = assert_envelope(send(api, message=text, recipients=[ASHA, JUMA]), 200)["data"]
    assert data["cost"] == 20.0 and data["segments"] == 1 and data["encoding"] == "GSM-7"
    message = Message.objects.get()
    assert message.text == text and message.personalised
    rows = dict(Recipient.objects.values_list("phone", "text"))
    assert rows == {
        ASHA: "Habari Asha, your order 1043 is ready in Arusha",
        JUMA: "Habari Juma, your order 5 is ready in Moshi",
    }


@pytest.mark.django_db
def test_a_phone_that_opts_out_while_the_send_is_priced_is_left_out(
    api, alice, people, monkeypatch
):
    """A STOP committed after the send read the opt-outs, before it wrote anything."""

    def a_stop_arrives_meanwhile(phones):
        asha = Contact.objects.get(account=alice, phone_number=ASHA)
        if not asha.opted_out:
            contact_set_opted_out(contact=asha, opted_out=True, source="keyword")
        return price_phones(phones)

    monkeypatch.setattr("sms.services.price_phones", a_stop_arrives_meanwhile)
    text = "Habari {{name}}, order {{order_id}}"
    data = assert_envelope(send(api, message=text, recipients=[ASHA, JUMA]), 200)["data"]
    assert data["cost"] == 10.0
    assert data["skipped"] == [{"phone": ASHA, "reason": "opted_out"}]
    assert list(Recipient.objects.values_list("phone", flat=True)) == [JUMA]
    assert balance(alice) == Decimal("4990.00")


@pytest.mark.django_db
def test_mixed_gsm7_and_ucs2_recipients_are_priced_exactly(api, alice, people):
    # 60 characters of filler: GSM-7 stays in one part, UCS-2 (70 a part, 67 when split)
    # needs two.
    text = "Dear {{name}}, " + "x" * 60
    data = assert_envelope(send(api, message=text, recipients=[ASHA, AYSE]), 200)["data"]
    assert data["cost"] == 30.0  # 1 part + 2 parts at 10 TZS
    assert data["segments"] == 2 and data["encoding"] == "UCS-2"
    assert balance(alice) == Decimal("4970.00")
    debit = LedgerEntry.objects.get(account=alice, kind="debit")
    assert debit.amount == Decimal("-30.00") and debit.reference == data["message_id"]
    status = assert_envelope(api.get(f"sms/status/{data['message_id']}/"), 200)["data"]
    assert status["cost"] == 30.0 and status["segments"] == 2
    rows = {r["phone"]: r for r in status["recipients"]}
    assert rows[ASHA]["text"] == "Dear Asha, " + "x" * 60
    assert (rows[ASHA]["segments"], rows[ASHA]["cost"]) == (1, 10.0)
    assert rows[AYSE]["text"] == "Dear Ayşe, " + "x" * 60
    assert (rows[AYSE]["segments"], rows[AYSE]["cost"]) == (2, 20.0)
    reports = assert_envelope(api.get("sms/delivery-reports/"), 200)["data"]["reports"]
    assert {r["phone"]: r["cost"] for r in reports} == {ASHA: 10.0, AYSE: 20.0}


@pytest.mark.django_db
def test_the_length_limit_applies_to_each_rendered_text(api, alice):
    contact(alice, ASHA, "Asha", note="short")
    contact(alice, AYSE, "Ayse", note="n" * 152)
    contact(alice, JUMA, "Juma", note="m" * 160)
    body = assert_envelope(
        send(api, message="Hi {{name}}: {{note}}", recipients=[ASHA, AYSE, JUMA]),
        400,
        "MESSAGE_TOO_LONG",
    )
    assert body["details"]["limit"] == 160
    assert body["details"]["over"] == [
        {"phone": AYSE, "length": 161},
        {"phone": JUMA, "length": 169},
    ]
    assert body["details"]["over_count"] == 2
    assert AYSE in body["message"]
    nothing_charged(alice)


@pytest.mark.django_db
def test_texts_over_the_limit_are_measured_without_being_built(api, alice):
    """A long variable times many recipients is refused without its texts in memory: 400
    recipients of a 100,000-character value would be 40 MB of text."""
    phones = [f"+2557120{n:05d}" for n in range(400)]
    body = {"message": "Habari {{x}}{{x}}", "variables": {"x": "A" * 100_000}}
    tracemalloc.start()
    try:
        refused = send(api, recipients=phones, **body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    details = assert_envelope(refused, 400, "MESSAGE_TOO_LONG")["details"]
    assert details["over_count"] == 400 and len(details["over"]) == 100
    assert details["over"][0] == {"phone": phones[0], "length": 200_007}
    assert peak < 10_000_000, peak
    nothing_charged(alice)


@pytest.mark.django_db
def test_a_long_template_whose_texts_are_short_is_accepted(api, alice):
    contact(alice, ASHA, "Asha")
    text = "{{city|" + "d" * 200 + "}} {{name}}"
    contact(alice, AYSE, "Ayse", city="Moshi")
    data = assert_envelope(send(api, message=text, recipients=[AYSE]), 200)["data"]
    assert data["cost"] == 10.0
    assert Recipient.objects.get().text == "Moshi Ayse"


@pytest.mark.django_db
def test_missing_values_are_listed_capped_with_a_count(api, alice):
    phones = [f"+2557130{i:05d}" for i in range(120)]
    body = assert_envelope(
        send(api, message="Order {{order_id}} for {{name}}", recipients=phones),
        400,
        "VALIDATION_ERROR",
    )
    details = body["details"]
    assert details["missing_count"] == 120
    assert len(details["missing"]) == 100
    assert details["missing"][0] == {"phone": phones[0], "fields": ["order_id", "name"]}
    assert details["unknown"] == ["order_id"]
    assert "order_id" in body["message"]
    nothing_charged(alice)


@pytest.mark.django_db
def test_a_text_that_renders_empty_for_a_recipient_is_refused(api, alice, locmem):
    """A blank SMS is refused, not sent as the raw template or charged."""
    contact(alice, ASHA, "Asha", note="Karibu")
    contact(alice, JUMA, "Juma")
    body = assert_envelope(
        send(api, message="{{note|}} ", recipients=[ASHA, JUMA]), 400, "VALIDATION_ERROR"
    )
    assert (body["details"]["empty"], body["details"]["empty_count"]) == ([JUMA], 1)
    assert JUMA in body["message"]
    nothing_charged(alice)
    assert locmem.outbox == []


@pytest.mark.django_db
def test_an_empty_variable_leaves_the_contacts_own_field(api, alice):
    contact(alice, ASHA, "Asha", city="Arusha")
    body = {"message": "See you in {{city|Dar}}", "recipients": [ASHA], "variables": {"city": ""}}
    assert_envelope(send(api, **body), 200)
    assert Recipient.objects.get().text == "See you in Arusha"


@pytest.mark.parametrize("text", ["Hi {{Name}}", "Hi {{name", "{{}} hi", "Hi {{first name}}"])
@pytest.mark.django_db
def test_a_malformed_placeholder_is_refused_before_anything_else(api, alice, text):
    # Even with a sender ID that is not approved: the text is checked first.
    body = assert_envelope(
        send(api, message=text, recipients=[ASHA], sender_id="NOPE"), 400, "VALIDATION_ERROR"
    )
    assert "placeholder" in body["message"]
    assert body["details"]["message"]
    nothing_charged(alice)


@pytest.mark.django_db
def test_variables_fill_placeholders_for_every_recipient_before_contact_fields(api, alice):
    contact(alice, ASHA, "Asha", day="Monday")
    body = {
        "message": "{{name|Mteja}}: pick up on {{day}} at {{shop}}",
        "recipients": [ASHA, STRANGER],
        "variables": {"day": "Friday", "shop": "Kariakoo"},
    }
    assert_envelope(send(api, **body), 200)
    assert dict(Recipient.objects.values_list("phone", "text")) == {
        ASHA: "Asha: pick up on Friday at Kariakoo",
        STRANGER: "Mteja: pick up on Friday at Kariakoo",
    }


@pytest.mark.parametrize(
    "variables", [["a"], {"Shop": "x"}, {"shop\n": "x"}, {"shop": 5}, {"shop": None}, "shop"]
)
@pytest.mark.django_db
def test_bad_variables_are_a_validation_error(api, alice, variables):
    body = assert_envelope(
        send(api, message="{{shop}}", recipients=[ASHA], variables=variables),
        400,
        "VALIDATION_ERROR",
    )
    assert "variables" in body["details"]
    nothing_charged(alice)


@pytest.mark.django_db
def test_a_plain_text_is_not_personalised(api, alice):
    data = assert_envelope(send(api, message="Price {5} } {", recipients=[ASHA]), 200)["data"]
    message = Message.objects.get()
    assert not message.personalised
    row = Recipient.objects.get()
    assert row.text == "" and row.segments == 1
    status = assert_envelope(api.get(f"sms/status/{data['message_id']}/"), 200)["data"]
    assert status["recipients"][0]["text"] == "Price {5} } {"
    assert status["recipients"][0]["segments"] == 1
    assert status["recipients"][0]["cost"] == 10.0


@pytest.mark.django_db
def test_a_segment_send_renders_per_member(api, alice):
    contact(alice, ASHA, "Asha", city="Arusha")
    contact(alice, AYSE, "Ayse", city="Arusha")
    contact(alice, JUMA, "Juma", city="Moshi")
    created = api.post(
        "contacts/segments/create/",
        {"name": "Arusha", "criteria": {"custom_fields": {"city": "Arusha"}}},
    )
    segment_id = assert_envelope(created, 201)["data"]["id"]
    data = assert_envelope(
        send(api, message="Karibu {{name}} wa {{city}}", segment_ids=[segment_id]), 200
    )["data"]
    assert data["from_segments"] == {segment_id: 2}
    assert dict(Recipient.objects.values_list("phone", "text")) == {
        ASHA: "Karibu Asha wa Arusha",
        AYSE: "Karibu Ayse wa Arusha",
    }


@pytest.mark.django_db
def test_dispatch_sends_each_recipient_their_text_and_refunds_a_rejection_exactly(
    api, alice, people, locmem
):
    locmem.reject = {AYSE: ("INVALID_DEST", True)}
    text = "Dear {{name}}, " + "x" * 60
    data = assert_envelope(send(api, message=text, recipients=[ASHA, AYSE, JUMA]), 200)["data"]
    assert data["cost"] == 40.0
    dispatch.message_dispatch(message_id=data["message_id"])
    assert {s.to: s.text for s in locmem.outbox} == {
        ASHA: "Dear Asha, " + "x" * 60,
        JUMA: "Dear Juma, " + "x" * 60,
    }
    # Ayşe's two parts come back, nothing else.
    refund = LedgerEntry.objects.get(account=alice, kind="refund")
    assert refund.amount == Decimal("20.00")
    assert balance(alice) == Decimal("4980.00")


@pytest.mark.django_db
def test_a_replayed_personalised_send_is_charged_once(api, alice, people):
    body = {"message": "Hi {{name}} #{{order_id}}", "recipients": [ASHA, AYSE]}
    first = api.post("sms/send/", body, HTTP_IDEMPOTENCY_KEY="p-1")
    second = api.post("sms/send/", body, HTTP_IDEMPOTENCY_KEY="p-1")
    assert_envelope(first, 200)
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1
    assert Recipient.objects.count() == 2
    assert LedgerEntry.objects.filter(account=alice, kind="debit").count() == 1
    assert balance(alice) == Decimal("4980.00")


@pytest.mark.django_db
def test_a_test_key_renders_but_charges_nothing(api_for, alice, people):
    data = assert_envelope(
        send(api_for(alice, test=True), message="Hi {{name}}", recipients=[ASHA, AYSE]), 200
    )["data"]
    assert data["cost"] == 0.0
    assert dict(Recipient.objects.values_list("phone", "text")) == {
        ASHA: "Hi Asha",
        AYSE: "Hi Ayşe",
    }
    assert balance(alice) == Decimal("5000.00")


@pytest.mark.django_db
def test_send_by_template_id_with_variables(api, alice, people):
    template = MessageTemplate.objects.create(
        account=alice, name="ready", text="{{name}}: order {{order_id}} at {{shop}}"
    )
    data = assert_envelope(
        send(api, template_id=template.id, recipients=[ASHA], variables={"shop": "Mwenge"}),
        200,
    )["data"]
    message = Message.objects.get(pk=data["message_id"])
    assert message.text == template.text
    assert Recipient.objects.get().text == "Asha: order 1043 at Mwenge"


@pytest.mark.django_db
def test_another_accounts_template_is_not_found(api, alice, bob):
    theirs = MessageTemplate.objects.create(account=bob, name="x", text="Hi {{name}}")
    body = assert_envelope(send(api, template_id=theirs.id, recipients=[ASHA]), 404, "NOT_FOUND")
    assert body["details"] == {"template_id": theirs.id}
    nothing_charged(alice)


@pytest.mark.parametrize(
    "body",
    [
        {"recipients": [ASHA]},
        {"recipients": [ASHA], "message": "hi", "template_id": "tpl_x"},
    ],
)
@pytest.mark.django_db
def test_message_or_template_id_exactly_one(api, alice, body):
    response = assert_envelope(send(api, **body), 400, "VALIDATION_ERROR")
    assert "message" in response["details"]
    nothing_charged(alice)


@pytest.mark.django_db
def test_canceling_a_scheduled_personalised_send_refunds_every_recipients_cost(api, alice, people):
    from datetime import timedelta

    from django.utils import timezone

    when = (timezone.now() + timedelta(hours=2)).isoformat()
    text = "Dear {{name}}, " + "x" * 60
    data = assert_envelope(
        send(api, message=text, recipients=[ASHA, AYSE], schedule_time=when), 200
    )["data"]
    assert data["status"] == "scheduled" and data["cost"] == 30.0
    cancel = assert_envelope(api.post(f"sms/{data['message_id']}/cancel/"), 200)["data"]
    assert cancel["refunded"] == 30.0
    assert balance(alice) == Decimal("5000.00")
