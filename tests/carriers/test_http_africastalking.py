"""The Africa's Talking carrier against a local server that answers as its messaging API
documents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured

from contacts.models import Contact, OptOutChange
from sms.carriers import get_carrier
from sms.carriers.africastalking import SANDBOX_URL, AfricasTalkingCarrier
from sms.carriers.base import CarrierError
from sms.models import Recipient
from sms.services import message_send
from tests.helpers import assert_envelope

from .http_provider import (
    AT_API_KEY,
    AT_USERNAME,
    AfricasTalkingServer,
    Reply,
    configure,
    dlr_url,
    outbound,
    reconfigure,
)

pytestmark = pytest.mark.timeout(30)

TZ = "+255712345678"
TZ2 = "+255754000111"
TZ3 = "+255765000222"
DLR_SECRET = "at-dlr-secret"


@pytest.fixture
def at(settings) -> Iterator[AfricasTalkingServer]:
    with AfricasTalkingServer() as server:
        configure(
            settings,
            "africastalking",
            "sms.carriers.africastalking.AfricasTalkingCarrier",
            USERNAME=AT_USERNAME,
            API_KEY=AT_API_KEY,
            DLR_SECRET=DLR_SECRET,
            BASE_URL=server.url,
            TIMEOUT=2,
        )
        yield server
        get_carrier("africastalking").close()


def carrier() -> AfricasTalkingCarrier:
    backend = get_carrier("africastalking")
    assert isinstance(backend, AfricasTalkingCarrier)
    return backend


def post_dlr(client, form, token: str | None = DLR_SECRET, **extra):
    return client.post(dlr_url("africastalking", token), data=form, **extra)


# -- sending ----------------------------------------------------------------------------------


def test_a_batch_is_one_documented_form_post(at):
    batch = [outbound(TZ, "Habari"), outbound(TZ2, "Habari")]
    results = carrier().send_messages(batch)

    [request] = at.requests
    assert request.method == "POST" and request.path == "/version1/messaging"
    assert request.headers["apikey"] == AT_API_KEY
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in request.headers
    assert request.form() == {
        "username": AT_USERNAME,
        "to": f"{TZ},{TZ2}",
        "message": "Habari",
        "from": "MIFUMO",
    }
    ids = {number: message_id for message_id, number in at.accepted}
    assert [r.carrier_message_ids for r in results] == [(ids[TZ],), (ids[TZ2],)]
    assert all(r.accepted for r in results)


def test_the_sandbox_username_selects_the_sandbox_host(settings):
    configure(
        settings,
        "africastalking",
        "sms.carriers.africastalking.AfricasTalkingCarrier",
        USERNAME="sandbox",
        API_KEY="k",
    )
    assert carrier().base_url == SANDBOX_URL


@pytest.mark.parametrize(
    ("code", "status", "error_code", "permanent"),
    [
        (401, "RiskHold", "RISK_HOLD", True),
        (402, "InvalidSenderId", "INVALID_SENDER_ID", True),
        (403, "InvalidPhoneNumber", "INVALID_PHONE", True),
        (404, "UnsupportedNumberType", "UNSUPPORTED_NUMBER_TYPE", True),
        (405, "InsufficientBalance", "CARRIER_BALANCE", False),
        (406, "UserInBlacklist", "BLACKLISTED", True),
        (407, "CouldNotRoute", "NO_ROUTE", False),
        (409, "DoNotDisturbRejection", "DND_REJECTED", True),
        (500, "InternalServerError", "CARRIER_INTERNAL_ERROR", False),
        (501, "GatewayError", "GATEWAY_ERROR", False),
        (502, "RejectedByGateway", "REJECTED_BY_GATEWAY", True),
        (499, "SomethingNew", "CARRIER_REJECTED", False),
    ],
)
def test_per_recipient_status_codes_map_to_permanent_or_temporary(
    at, code, status, error_code, permanent
):
    at.refuse = {TZ2: (code, status)}
    ok, refused = carrier().send_messages([outbound(TZ), outbound(TZ2)])
    assert ok.accepted
    assert not refused.accepted
    assert (refused.error_code, refused.permanent) == (error_code, permanent)
    assert status in (refused.error_message or "")


def test_queued_and_processed_numbers_are_accepted(at):
    at.refuse = {TZ: (100, "Processed"), TZ2: (102, "Queued")}
    results = carrier().send_messages([outbound(TZ), outbound(TZ2)])
    assert all(r.accepted and r.carrier_message_ids for r in results)


def test_a_request_refused_as_a_whole_names_its_reason(at):
    at.then(Reply(201, {"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}))
    results = carrier().send_messages([outbound(TZ), outbound(TZ2)])
    assert [(r.accepted, r.error_code, r.permanent) for r in results] == [
        (False, "INVALID_SENDER_ID", True)
    ] * 2


def test_a_bad_request_is_rejected_permanently(at):
    at.then(Reply(400, "Invalid phone number: 0712", "text/plain"))
    [result] = carrier().send_messages([outbound(TZ)])
    assert (result.accepted, result.permanent, result.error_code) == (
        False,
        True,
        "CARRIER_REQUEST",
    )
    assert "Invalid phone number" in (result.error_message or "")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_temporary_carrier_errors(at, status):
    at.then(Reply(status, "Service Unavailable", "text/plain"))
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ), outbound(TZ2)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_UNAVAILABLE"


def test_a_timeout_is_a_temporary_carrier_error(at, settings):
    reconfigure(settings, "africastalking", TIMEOUT=0.3)
    at.then(Reply(201, {}, delay=3))
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_TIMEOUT"


def test_an_unreadable_answer_is_temporary(at):
    at.then(Reply(201, "<html>maintenance</html>", "text/html"))
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_BAD_RESPONSE"


def test_a_wrong_api_key_is_a_permanent_auth_error(at, settings):
    reconfigure(settings, "africastalking", API_KEY="not-the-key")
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ)])
    assert raised.value.permanent is True and raised.value.code == "CARRIER_AUTH"
    assert "not-the-key" not in str(raised.value)


def test_after_a_failed_chunk_the_rest_is_not_sent(at, settings):
    reconfigure(settings, "africastalking", MAX_RECIPIENTS=1)
    at.then(None, Reply(503))
    first, second, third = carrier().send_messages([outbound(TZ), outbound(TZ2), outbound(TZ3)])
    assert first.accepted
    assert [(r.accepted, r.permanent, r.error_code) for r in (second, third)] == [
        (False, False, "CARRIER_UNAVAILABLE")
    ] * 2
    assert len(at.requests) == 2


def test_a_missing_username_names_the_exact_setting(settings):
    configure(
        settings, "africastalking", "sms.carriers.africastalking.AfricasTalkingCarrier", API_KEY="k"
    )
    with pytest.raises(
        ImproperlyConfigured, match=r"MIFUMO_CARRIERS\['africastalking'\]\['USERNAME'\]"
    ):
        carrier().send_messages([outbound(TZ)])


# -- delivery reports -------------------------------------------------------------------------


def sent_message(account, phones, django_capture_on_commit_callbacks, settings):
    settings.MIFUMO_CARRIER = "africastalking"
    with django_capture_on_commit_callbacks(execute=True):
        return message_send(account=account, text="Habari", recipients=phones).message


def report(at: AfricasTalkingServer, phone: str, status: str = "Success", **extra) -> dict:
    message_id = next(mid for mid, number in at.accepted if number == phone)
    return {
        "id": message_id,
        "status": status,
        "phoneNumber": phone,
        "networkCode": "64002",
        "retryCount": "0",
        **extra,
    }


@pytest.mark.django_db
def test_a_success_report_marks_the_recipient_delivered(
    at, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    response = post_dlr(client, report(at, TZ))
    assert response.status_code == 200
    recipient = Recipient.objects.get()
    assert recipient.status == "delivered" and recipient.delivered_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "reason", "expected", "error_code"),
    [
        ("Failed", "AbsentSubscriber", "failed", "AbsentSubscriber"),
        ("Rejected", "UserInBlackList", "failed", "UserInBlackList"),
        ("Expired", "", "failed", "EXPIRED"),
        ("Buffered", "", "sent", ""),
        ("Submitted", "", "sent", ""),
        ("SomethingElse", "", "sent", ""),
    ],
)
def test_report_statuses_map_to_recipient_states(
    at,
    alice,
    client,
    settings,
    django_capture_on_commit_callbacks,
    status,
    reason,
    expected,
    error_code,
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    extra = {"failureReason": reason} if reason else {}
    assert post_dlr(client, report(at, TZ, status, **extra)).status_code == 200
    recipient = Recipient.objects.get()
    assert (recipient.status, recipient.error_code) == (expected, error_code)


@pytest.mark.django_db
def test_a_report_that_the_phone_blacklisted_the_sender_opts_the_phone_out(
    at, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    form = report(at, TZ, "Rejected", failureReason="UserInBlackList")
    with django_capture_on_commit_callbacks(execute=True):
        assert post_dlr(client, form).status_code == 200
    contact = Contact.objects.get(account=alice, phone_number=TZ)
    assert contact.opted_out
    change = OptOutChange.objects.get(contact=contact)
    assert (change.source, change.detail) == ("carrier", "africastalking: UserInBlackList")


@pytest.mark.django_db
@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_report_without_the_right_token_is_refused(
    at, alice, client, settings, django_capture_on_commit_callbacks, token
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    assert post_dlr(client, report(at, TZ), token=token).status_code == 400
    assert Recipient.objects.get().status == "sent"


@pytest.mark.django_db
def test_a_report_missing_its_id_is_a_bad_request(at, client):
    response = post_dlr(client, {"status": "Success", "phoneNumber": TZ})
    assert response.status_code == 400 and response.json() == {"error": "missing id"}


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_send_through_africastalking_then_its_report_shows_delivered(
    api, alice, at, client, settings, django_capture_on_commit_callbacks
):
    settings.MIFUMO_CARRIER = "africastalking"
    with django_capture_on_commit_callbacks(execute=True):
        body = assert_envelope(
            api.post("sms/send/", {"message": "Habari", "recipients": [TZ]}), 200
        )
    message_id = body["data"]["message_id"]
    [request] = at.requests
    assert request.form()["to"] == TZ
    assert assert_envelope(api.get(f"sms/status/{message_id}/"), 200)["data"]["status"] == "sent"

    assert post_dlr(client, report(at, TZ)).status_code == 200

    status = assert_envelope(api.get(f"sms/status/{message_id}/"), 200)["data"]
    assert status["status"] == "delivered"
    assert status["delivery_time"] and status["delivery_time"].endswith("Z")
