from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from integration.models import LedgerEntry, Permission
from sms.models import Message, PriceRule, Recipient, SenderId
from tests.helpers import assert_envelope

TZ = "+255712345678"
TZ2 = "+255754000111"


def send(api, **body):
    payload = {"message": "Hello from Mifumo SMS!", "recipients": [TZ], **body}
    return api.post("sms/send/", payload)


@pytest.mark.django_db
def test_send_answers_the_guide_shape_and_charges_ten_shillings(api, alice):
    body = assert_envelope(send(api, sender_id="MIFUMO"), 200)
    data = body["data"]
    assert body["message"] == "SMS sent successfully"
    assert data["message_id"].startswith("msg_") and len(data["message_id"]) == 30
    assert data["recipients"] == [TZ]
    assert data["cost"] == 10.0 and data["currency"] == "TZS"
    assert data["segments"] == 1 and data["encoding"] == "GSM-7"
    assert data["sender_id"] == "MIFUMO" and data["schedule_time"] is None
    assert data["status"] in ("queued", "sent", "delivered")
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")
    entry = LedgerEntry.objects.filter(account=alice, kind="debit").get()
    assert entry.amount == Decimal("-10.00") and entry.reference == data["message_id"]


@pytest.mark.django_db
def test_local_formats_are_normalised_and_duplicates_removed(api):
    recipients = ["0712345678", "+255 712 345 678", "712345678", "255754000111", TZ2]
    data = assert_envelope(send(api, recipients=recipients), 200)["data"]
    assert data["recipients"] == [TZ, TZ2]
    assert data["cost"] == 20.0


@pytest.mark.django_db
def test_default_sender_id_is_mifumo(api):
    data = assert_envelope(send(api), 200)["data"]
    assert data["sender_id"] == "MIFUMO"


@pytest.mark.django_db
def test_one_invalid_number_rejects_the_whole_request_listing_every_bad_entry(api, alice):
    response = send(api, recipients=[TZ, "+255123456789", "hello", 5, "+255222123456"])
    body = assert_envelope(response, 400, "INVALID_PHONE")
    bad = {item["phone"]: item["reason"] for item in body["details"]["invalid"]}
    assert set(bad) == {"+255123456789", "hello", "5", "+255222123456"}
    assert bad["+255222123456"] == "is not a mobile number"
    assert not Message.objects.exists()
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")


@pytest.mark.django_db
def test_missing_fields_are_validation_errors(api):
    body = assert_envelope(api.post("sms/send/", {}), 400, "VALIDATION_ERROR")
    assert "message" in body["details"]
    body = assert_envelope(api.post("sms/send/", {"message": "hi"}), 400, "VALIDATION_ERROR")
    assert "recipients" in body["details"]


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_or_whitespace_message_is_a_validation_error(api, text):
    body = assert_envelope(send(api, message=text), 400, "VALIDATION_ERROR")
    assert "message" in body["details"]


@pytest.mark.django_db
def test_recipients_of_the_wrong_type_is_a_validation_error(api):
    assert_envelope(send(api, recipients="+255712345678"), 400, "VALIDATION_ERROR")


@pytest.mark.django_db
def test_message_over_160_characters_is_too_long_with_details(api):
    body = assert_envelope(send(api, message="a" * 161), 400, "MESSAGE_TOO_LONG")
    assert body["details"] == {"length": 161, "limit": 160, "encoding": "GSM-7", "segments": 2}


@pytest.mark.django_db
def test_160_gsm_characters_is_one_part(api):
    data = assert_envelope(send(api, message="a" * 160), 200)["data"]
    assert data["segments"] == 1 and data["cost"] == 10.0


@pytest.mark.django_db
def test_unicode_message_is_ucs2_and_billed_per_part(api):
    data = assert_envelope(send(api, message="Habari 😀" + "x" * 70), 200)["data"]
    assert data["encoding"] == "UCS-2"
    assert data["segments"] == 2
    assert data["cost"] == 20.0


@pytest.mark.django_db
def test_raised_account_limit_allows_long_messages_billed_per_part(api, alice):
    alice.max_message_length = 1000
    alice.save()
    data = assert_envelope(send(api, message="a" * 306), 200)["data"]
    assert data["segments"] == 2
    data = assert_envelope(send(api, message="a" * 307), 200)["data"]
    assert data["segments"] == 3 and data["cost"] == 30.0


@pytest.mark.django_db
def test_unapproved_sender_id_is_rejected(api, alice):
    assert_envelope(send(api, sender_id="ACME"), 400, "INVALID_SENDER_ID")
    SenderId.objects.create(account=alice, value="ACME", status=SenderId.Status.PENDING)
    assert_envelope(send(api, sender_id="ACME"), 400, "INVALID_SENDER_ID")


@pytest.mark.django_db
def test_approved_sender_id_is_accepted_only_for_its_account(api, alice, bob, api_for):
    SenderId.objects.create(account=alice, value="ACME", status=SenderId.Status.APPROVED)
    assert assert_envelope(send(api, sender_id="ACME"), 200)["data"]["sender_id"] == "ACME"
    assert_envelope(send(api_for(bob), sender_id="ACME"), 400, "INVALID_SENDER_ID")


@pytest.mark.django_db
@pytest.mark.parametrize("sender", ["TWELVECHARSX", "+1234567890123456", "bad!", "   "])
def test_malformed_sender_id_is_rejected(api, sender):
    response = send(api, sender_id=sender)
    if sender.strip():
        assert_envelope(response, 400, "INVALID_SENDER_ID")
    else:  # blank means the default
        assert_envelope(response, 200)


@pytest.mark.django_db
def test_more_than_the_recipient_limit_is_rejected(api, settings):
    settings.MIFUMO_MAX_RECIPIENTS = 3
    phones = [f"+2557120000{i:02d}" for i in range(4)]
    body = assert_envelope(send(api, recipients=phones), 400, "TOO_MANY_RECIPIENTS")
    assert body["details"] == {"count": 4, "limit": 3}


@pytest.mark.django_db
def test_a_country_without_a_price_rule_is_unsupported(api):
    body = assert_envelope(
        send(api, recipients=[TZ, "+254712345678"]), 400, "UNSUPPORTED_DESTINATION"
    )
    assert body["details"]["unsupported"] == ["+254712345678"]


@pytest.mark.django_db
def test_network_prefix_rule_overrides_the_country_price(api):
    PriceRule.objects.create(country_code="255", prefix="25575", price_per_segment="7.50")
    PriceRule.objects.create(country_code="254", price_per_segment="25.00")
    data = assert_envelope(send(api, recipients=[TZ, TZ2, "+254712345678"]), 200)["data"]
    assert data["cost"] == 10.0 + 7.5 + 25.0


@pytest.mark.django_db
def test_insufficient_balance_is_402_with_cost_and_balance_and_charges_nothing(
    make_account, api_for
):
    poor = make_account("poor", balance="15.00")
    api = api_for(poor)
    body = assert_envelope(send(api, recipients=[TZ, TZ2]), 402, "INSUFFICIENT_BALANCE")
    assert body["details"] == {"cost": 20.0, "balance": 15.0, "currency": "TZS"}
    poor.refresh_from_db()
    assert poor.balance == Decimal("15.00")
    assert not Message.objects.exists() and not Recipient.objects.exists()


@pytest.mark.django_db
def test_test_keys_never_debit_and_use_the_simulator(
    alice, api_for, locmem, django_capture_on_commit_callbacks
):
    api = api_for(alice, Permission.WRITE, test=True)
    with django_capture_on_commit_callbacks(execute=True):
        data = assert_envelope(send(api), 200)["data"]
    assert data["test"] is True and data["cost"] == 0.0
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")
    assert Recipient.objects.get().carrier == "simulator"
    assert locmem.outbox == []  # the live route was not used


@pytest.mark.django_db
def test_read_key_cannot_send(alice, api_for):
    assert_envelope(send(api_for(alice, Permission.READ)), 403, "PERMISSION_DENIED")


@pytest.mark.django_db
def test_schedule_time_in_the_future_is_stored_as_scheduled(api, alice):
    when = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    body = assert_envelope(send(api, schedule_time=when.isoformat()), 200)
    assert body["message"] == "SMS scheduled successfully"
    assert body["data"]["status"] == "scheduled"
    assert body["data"]["schedule_time"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert Recipient.objects.get().status == "scheduled"
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")  # charged when accepted


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [
        "2020-01-01T10:00:00Z",  # past
        "2999-01-01T10:00:00Z",  # too far ahead
        "tomorrow",
        "2030-01-01T10:00:00",  # no zone
        12345,
    ],
)
def test_bad_schedule_time_is_rejected(api, value):
    assert_envelope(send(api, schedule_time=value), 400, "INVALID_SCHEDULE_TIME")


@pytest.mark.django_db
def test_a_fraction_of_a_second_in_schedule_time_is_rounded_up_as_answered(api):
    asked = (timezone.now() + timedelta(hours=1)).replace(microsecond=900_000)
    data = assert_envelope(send(api, schedule_time=asked.isoformat()), 200)["data"]
    at = asked.replace(microsecond=0) + timedelta(seconds=1)
    assert data["schedule_time"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert Message.objects.get().schedule_time == at
    status = assert_envelope(api.get(f"sms/status/{data['message_id']}/"), 200)["data"]
    assert status["schedule_time"] == data["schedule_time"]


@pytest.mark.django_db
def test_schedule_time_with_an_offset_is_accepted(api):
    when = timezone.now() + timedelta(days=1)
    text = when.astimezone(timezone.get_fixed_timezone(180)).isoformat()
    assert_envelope(send(api, schedule_time=text), 200)


@pytest.mark.django_db
def test_unknown_fields_are_ignored(api):
    body = assert_envelope(send(api, priority="high", foo={"bar": 1}, callback_url="x"), 200)
    assert Message.objects.get().pk == body["data"]["message_id"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "meant"),
    [
        ("scheduled_time", "schedule_time"),
        ("scheduleTime", "schedule_time"),
        ("schedule-time", "schedule_time"),
        ("sender", "sender_id"),
        ("webhookUrl", "webhook_url"),
        ("segments", "segment_ids"),
    ],
)
def test_a_misspelt_field_is_refused_by_name_and_nothing_is_charged(api, alice, field, meant):
    """A misspelt option (``scheduled_time`` for ``schedule_time``) must not send at once."""
    body = assert_envelope(
        send(api, **{field: "2030-01-01T08:00:00Z", "foo": 1}), 400, "VALIDATION_ERROR"
    )
    assert body["details"] == {field: [f"Unknown field; did you mean {meant}?"]}
    assert not Message.objects.exists()
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")


@pytest.mark.django_db
def test_invalid_webhook_url_is_a_validation_error(api):
    assert_envelope(send(api, webhook_url="ftp://example.com/hook"), 400, "VALIDATION_ERROR")
    assert_envelope(send(api, webhook_url="not a url"), 400, "VALIDATION_ERROR")


@pytest.mark.django_db
def test_nothing_is_stored_when_validation_fails_late(api, alice):
    # The price check runs after the phone checks; nothing may be half-written.
    assert_envelope(send(api, recipients=[TZ, "+254712345678"]), 400, "UNSUPPORTED_DESTINATION")
    assert not Message.objects.exists()
    assert not LedgerEntry.objects.filter(kind="debit").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("ñ" * 160, "GSM-7", 1),  # ñ is in the GSM alphabet; ş below is not
        ("ş" * 70, "UCS-2", 1),
        ("ş" * 71, "UCS-2", 2),
        ("€" * 80, "GSM-7", 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 2),
        ("a" * 159 + "€", "GSM-7", 2),
        ("😀" * 35, "UCS-2", 1),  # an emoji is two UTF-16 units
        ("😀" * 36, "UCS-2", 2),
        ("Habari yako? Karibu sana, rafiki.", "GSM-7", 1),
    ],
)
def test_encoding_and_parts_at_the_boundaries(api, text, encoding, segments):
    data = assert_envelope(send(api, message=text), 200)["data"]
    assert (data["encoding"], data["segments"]) == (encoding, segments)
    assert data["cost"] == 10.0 * segments


@pytest.mark.django_db
def test_control_characters_and_rtl_text_are_sent_as_written(api):
    text = "مرحبا \u202eabc\u202c\tline\nnext"
    data = assert_envelope(send(api, message=text), 200)["data"]
    assert data["encoding"] == "UCS-2"
    assert Message.objects.get(pk=data["message_id"]).text == text
