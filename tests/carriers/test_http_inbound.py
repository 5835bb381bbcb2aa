"""Inbound messages from the HTTP aggregators: each provider's documented callback, with a
real signature or token, stored through the inbound pipeline; forged ones refused. And the
carriers' own opt-out reports joining the opt-out list."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from contacts.models import Contact, OptOutChange
from inbox.models import InboundMessage
from inbox.services import number_assign
from integration.models import Account
from mifumo.errors import DomainError
from sms.carriers.base import OutboundSms, SubmitResult
from sms.dispatch import results_record
from sms.models import Message, Recipient
from sms.services import message_send

from .http_provider import (
    TWILIO_SID,
    TWILIO_TOKEN,
    AfricasTalkingServer,
    BeemServer,
    TwilioServer,
    configure,
    twilio_signature,
)

pytestmark = [pytest.mark.timeout(30), pytest.mark.django_db]

AT_SECRET = "at-dlr-secret"
BEEM_SECRET = "beem-dlr-secret"
PHONE = "+255712345678"
TWILIO_URL = "http://testserver/api/integration/carriers/twilio/inbound/"


def url(name: str, token: str | None = None) -> str:
    return f"/api/integration/carriers/{name}/inbound/" + (f"?token={token}" if token else "")


@pytest.fixture
def aggregators(beem: BeemServer, at: AfricasTalkingServer, twilio: TwilioServer) -> None:
    """The three providers, configured as their own tests configure them."""


@pytest.fixture
def owner(alice: Account, aggregators: None) -> Account:
    number_assign(account=alice, number="+255700000100")
    number_assign(account=alice, number="15555", keyword="DUKA")
    return alice


def twilio_form(**extra: str) -> dict[str, str]:
    return {
        "MessageSid": "SM0123456789abcdef0123456789abcdef",
        "SmsSid": "SM0123456789abcdef0123456789abcdef",
        "AccountSid": TWILIO_SID,
        "From": PHONE,
        "To": "+255700000100",
        "Body": "STOP",
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def post_twilio(client: Any, form: dict[str, str], token: str = TWILIO_TOKEN) -> Any:
    signature = twilio_signature(token, TWILIO_URL, form)
    return client.post(url("twilio"), data=form, HTTP_X_TWILIO_SIGNATURE=signature)


def test_twilio_signed_inbound_is_stored_and_answered_with_empty_twiml(
    owner: Account, client: Any
) -> None:
    response = post_twilio(client, twilio_form())
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    assert b"<Response></Response>" in response.content
    message = InboundMessage.objects.get()
    assert (message.account_id, message.sender, message.destination) == (
        owner.pk,
        PHONE,
        "+255700000100",
    )
    assert (message.carrier, message.carrier_message_id, message.action) == (
        "twilio",
        "SM0123456789abcdef0123456789abcdef",
        "opt_out",
    )
    assert Contact.objects.get(account=owner, phone_number=PHONE).opted_out
    # Twilio retries a webhook it got no answer to: stored once.
    assert post_twilio(client, twilio_form()).status_code == 200
    assert InboundMessage.objects.count() == 1


@pytest.mark.parametrize("forgery", ["wrong token", "changed body", "no signature"])
def test_twilio_forged_inbound_is_refused(owner: Account, client: Any, forgery: str) -> None:
    form = twilio_form()
    if forgery == "wrong token":
        response = post_twilio(client, form, token="not-the-token")
    elif forgery == "changed body":
        signature = twilio_signature(TWILIO_TOKEN, TWILIO_URL, form)
        tampered = {**form, "Body": "START"}
        response = client.post(url("twilio"), data=tampered, HTTP_X_TWILIO_SIGNATURE=signature)
    else:
        response = client.post(url("twilio"), data=form)
    assert response.status_code == 400
    assert not InboundMessage.objects.exists()


def test_africastalking_inbound_with_its_token_is_stored(owner: Account, client: Any) -> None:
    form = {
        "from": PHONE,
        "to": "15555",
        "text": "duka Nataka bei",
        "id": "ATXid_0123",
        "date": "2026-01-05 10:00:00",
        "linkId": "SampleLinkId123",
        "networkCode": "63902",
    }
    response = client.post(url("africastalking", AT_SECRET), data=form)
    assert response.status_code == 200, response.content
    message = InboundMessage.objects.get()
    assert (message.account_id, message.keyword, message.text) == (owner.pk, "DUKA", form["text"])
    assert message.carrier_message_id == "ATXid_0123"
    assert message.received_at.isoformat().startswith("2026-01-05T10:00:00")
    assert message.raw["linkId"] == "SampleLinkId123" and "token" not in message.raw


@pytest.mark.parametrize("token", [None, "guess"])
def test_africastalking_inbound_without_its_token_is_refused(
    owner: Account, client: Any, token: str | None
) -> None:
    form = {"from": PHONE, "to": "15555", "text": "duka stop", "id": "ATXid_1"}
    assert client.post(url("africastalking", token), data=form).status_code == 400
    assert not InboundMessage.objects.exists()


def test_africastalking_inbound_missing_a_field_is_a_bad_request(
    owner: Account, client: Any
) -> None:
    response = client.post(url("africastalking", AT_SECRET), data={"to": "15555", "text": "x"})
    assert response.status_code == 400 and b"from" in response.content


def post_beem(client: Any, body: Any) -> Any:
    return client.post(
        url("beem"),
        data=json.dumps(body),
        content_type="application/json",
        HTTP_X_MIFUMO_DLR_TOKEN=BEEM_SECRET,
    )


@pytest.mark.parametrize(
    "body",
    [
        {
            "from": "255712345678",
            "to": "15555",
            "message": {"text": "DUKA help"},
            "transaction_id": "b1",
        },
        {"source_addr": "255712345678", "dest_addr": "15555", "text": "DUKA help", "id": "b1"},
    ],
)
def test_beem_inbound_with_its_token_is_stored(
    owner: Account, client: Any, body: dict[str, Any]
) -> None:
    response = post_beem(client, body)
    assert response.status_code == 200, response.content
    message = InboundMessage.objects.get()
    assert (message.sender, message.keyword, message.action) == (PHONE, "DUKA", "help")
    assert (message.carrier, message.carrier_message_id) == ("beem", "b1")


def test_beem_inbound_with_nul_characters_is_stored_without_them(
    owner: Account, client: Any
) -> None:
    """An aggregator that decodes GSM's @ as 0x00: the text and the raw fields PostgreSQL
    keeps lose the NUL, and the other message of the delivery is stored as well."""
    body = [
        {"from": "255712345678", "to": "15555", "message": "DUKA stop", "transaction_id": "b3"},
        {
            "from": "255754000111",
            "to": "15555",
            "message": "DUKA bei\u0000 ya mbolea",
            "transaction_id": "b4\u0000",
            "extra\u0000": ["\u0000"],
        },
    ]
    response = post_beem(client, body)
    assert response.status_code == 200, response.content
    stop, question = InboundMessage.objects.order_by("carrier_message_id")
    assert (stop.carrier_message_id, stop.action) == ("b3", "opt_out")
    assert (question.carrier_message_id, question.text) == ("b4", "DUKA bei ya mbolea")
    assert "\x00" not in json.dumps(question.raw) and "\\u0000" not in json.dumps(question.raw)
    assert Contact.objects.get(account=owner, phone_number=PHONE).opted_out


def test_beem_inbound_with_lone_surrogates_is_stored_with_replacement_characters(
    owner: Account, client: Any
) -> None:
    """A truncated emoji (half a surrogate pair) cannot be stored as it came; refused, the
    provider would send it again forever."""
    body = '{"from": "255712345678", "to": "15555", "message": "DUKA Habari \\ud83d",'
    body += ' "transaction_id": "b5", "extra\\udc00": "x\\udc80"}'
    response = client.post(
        url("beem"), data=body, content_type="application/json", HTTP_X_MIFUMO_DLR_TOKEN=BEEM_SECRET
    )
    assert response.status_code == 200, response.content
    message = InboundMessage.objects.get()
    assert message.text == "DUKA Habari \ufffd"
    assert message.raw["extra\ufffd"] == "x\ufffd"


@pytest.mark.parametrize(
    ("date", "stored"),
    [
        ("9999-12-31T23:59:59-05:00", "now"),
        ("0001-01-01T00:00:00+05:00", "now"),
        ("2099-01-01 00:00:00", "now"),
        ("2026-01-05T13:00:00+03:00", "2026-01-05T10:00:00+00:00"),
    ],
)
def test_africastalking_inbound_dates_no_moment_or_ahead_of_ours_are_now(
    owner: Account, client: Any, date: str, stored: str
) -> None:
    before = timezone.now()
    form = {"from": PHONE, "to": "15555", "text": "duka bei", "id": "ATXid_9", "date": date}
    response = client.post(url("africastalking", AT_SECRET), data=form)
    assert response.status_code == 200, response.content
    received = InboundMessage.objects.get().received_at
    if stored == "now":
        assert before <= received <= timezone.now()
    else:
        assert received.isoformat() == stored


def test_beem_forged_inbound_is_refused(owner: Account, client: Any) -> None:
    body = {"from": "255712345678", "to": "15555", "message": "DUKA stop", "transaction_id": "b2"}
    response = client.post(
        url("beem", "forged"), data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400
    assert not InboundMessage.objects.exists()


def test_inbound_that_cannot_be_stored_asks_the_provider_to_send_it_again(
    owner: Account, client: Any, settings: Any
) -> None:
    settings.MIFUMO_INBOUND_SINK = f"{__name__}.refusing_sink"
    form = {"from": PHONE, "to": "15555", "text": "duka stop", "id": "ATXid_2"}
    assert client.post(url("africastalking", AT_SECRET), data=form).status_code == 503


def refusing_sink(items: Any) -> None:
    raise RuntimeError("database unavailable")


def test_unknown_carriers_and_carriers_without_inbound_are_404(
    aggregators: None, client: Any
) -> None:
    assert client.post(url("nope"), data={}).status_code == 404
    assert client.post(url("simulator"), data={}).status_code == 404
    assert client.get(url("africastalking", AT_SECRET)).status_code == 405


# -- opt-outs the carriers report --------------------------------------------------------------


def _send(account: Account, carrier: str, settings: Any, capture: Any) -> Message:
    settings.MIFUMO_CARRIER = carrier
    with capture(execute=True):
        return message_send(account=account, text="Habari", recipients=[PHONE]).message


def _carrier_opt_out(account: Account) -> OptOutChange:
    contact = Contact.objects.get(account=account, phone_number=PHONE)
    assert contact.opted_out
    return OptOutChange.objects.get(contact=contact)


def test_twilio_21610_opts_the_phone_out(
    alice: Account,
    twilio: TwilioServer,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    twilio.refuse = {PHONE: (400, 21610, "Attempt to send to unsubscribed recipient")}
    _send(alice, "twilio", settings, django_capture_on_commit_callbacks)
    change = _carrier_opt_out(alice)
    assert (change.source, change.detail) == ("carrier", "twilio: OPTED_OUT")


def test_africastalking_blacklisted_opts_the_phone_out(
    alice: Account,
    at: AfricasTalkingServer,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    at.refuse = {PHONE: (406, "UserInBlacklist")}
    _send(alice, "africastalking", settings, django_capture_on_commit_callbacks)
    assert _carrier_opt_out(alice).detail == "africastalking: BLACKLISTED"


def test_configured_smpp_error_codes_opt_the_phone_out(
    alice: Account, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    configure(
        settings,
        "smsc",
        "sms.carriers.smpp.SmppCarrier",
        HOST="127.0.0.1",
        PORT=1,
        SYSTEM_ID="x",
        PASSWORD="y",
        OPT_OUT_ERRORS=["SMPP_0x00000401"],
    )
    message = message_send(
        account=alice, text="Habari", recipients=[PHONE, "+255754000111"]
    ).message
    rows = list(Recipient.objects.filter(message=message).order_by("phone"))
    Recipient.objects.filter(message=message).update(status=Recipient.Status.SUBMITTING)
    results_record(
        [
            (
                message,
                "smsc",
                [
                    SubmitResult.rejected(
                        _sms(rows[0]), "SMPP_0x00000401", "opted out", permanent=True
                    ),
                    SubmitResult.rejected(
                        _sms(rows[1]), "SMPP_0x0000000B", "bad number", permanent=True
                    ),
                ],
            )
        ]
    )
    assert _carrier_opt_out(alice).detail == "smsc: SMPP_0x00000401"
    assert not Contact.objects.filter(phone_number="+255754000111", opted_out=True).exists()


def _sms(row: Recipient) -> OutboundSms:
    return OutboundSms(
        recipient_id=row.pk, message_id=row.message_id, to=row.phone, sender_id="MIFUMO", text="x"
    )


def test_opt_out_list_is_honoured_after_a_carrier_report(
    alice: Account,
    twilio: TwilioServer,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    twilio.refuse = {PHONE: (400, 21610, "unsubscribed")}
    _send(alice, "twilio", settings, django_capture_on_commit_callbacks)
    with pytest.raises(DomainError, match="opted out"):
        message_send(account=alice, text="Again", recipients=[PHONE])
