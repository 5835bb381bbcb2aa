"""The Twilio carrier against a local server that answers as Twilio's Messages API documents,
and Twilio's signed status callbacks through our DLR URL."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from sms.carriers import get_carrier
from sms.carriers.base import CarrierError
from sms.carriers.twilio import TwilioCarrier, signature
from sms.models import Recipient
from sms.services import message_send
from tests.helpers import assert_envelope

from .http_provider import (
    TWILIO_SID,
    TWILIO_TOKEN,
    Reply,
    TwilioServer,
    configure,
    dlr_url,
    outbound,
    reconfigure,
    twilio_signature,
)

pytestmark = pytest.mark.timeout(30)

TZ = "+255712345678"
TZ2 = "+255754000111"
TZ3 = "+255765000222"
CALLBACK = "http://testserver/api/integration/carriers/twilio/dlr/"


@pytest.fixture
def twilio(settings) -> Iterator[TwilioServer]:
    with TwilioServer() as server:
        configure(
            settings,
            "twilio",
            "sms.carriers.twilio.TwilioCarrier",
            ACCOUNT_SID=TWILIO_SID,
            AUTH_TOKEN=TWILIO_TOKEN,
            STATUS_CALLBACK_URL=CALLBACK,
            BASE_URL=server.url,
            TIMEOUT=2,
        )
        yield server
        get_carrier("twilio").close()


def carrier() -> TwilioCarrier:
    backend = get_carrier("twilio")
    assert isinstance(backend, TwilioCarrier)
    return backend


def post_callback(
    client,
    params: dict[str, str],
    url: str = CALLBACK,
    sign_url: str | None = None,
    token: str = TWILIO_TOKEN,
    **extra,
):
    """POST a status callback the way Twilio does: form-encoded and signed."""
    headers = {"HTTP_X_TWILIO_SIGNATURE": twilio_signature(token, sign_url or url, params)}
    return client.post(url.removeprefix("http://testserver"), data=params, **headers, **extra)


# -- sending ----------------------------------------------------------------------------------


def test_each_recipient_is_one_documented_request(twilio):
    results = carrier().send_messages([outbound(TZ, "Habari"), outbound(TZ2, "Habari")])

    assert len(twilio.requests) == 2
    expected_auth = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    for request in twilio.requests:
        assert request.method == "POST"
        assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
        assert request.headers["authorization"] == f"Basic {expected_auth}"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    forms = sorted((r.form() for r in twilio.requests), key=lambda form: form["To"])
    assert forms == [
        {"To": TZ, "From": "MIFUMO", "Body": "Habari", "StatusCallback": CALLBACK},
        {"To": TZ2, "From": "MIFUMO", "Body": "Habari", "StatusCallback": CALLBACK},
    ]
    sids = {to: sid for sid, to in twilio.accepted}
    assert [r.carrier_message_ids for r in results] == [(sids[TZ],), (sids[TZ2],)]


def test_a_messaging_service_replaces_the_sender(twilio, settings):
    reconfigure(settings, "twilio", MESSAGING_SERVICE_SID="MG" + "1" * 32)
    [result] = carrier().send_messages([outbound(TZ)])
    form = twilio.requests[0].form()
    assert form["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in form
    assert result.accepted


def test_requests_run_concurrently_but_bounded(twilio, settings):
    reconfigure(settings, "twilio", CONCURRENCY=3)
    twilio.then(*[Reply(201, {"sid": f"SM{n}", "status": "queued"}, delay=0.3) for n in range(9)])
    batch = [outbound(f"+2557123450{n:02d}") for n in range(9)]
    results = carrier().send_messages(batch)
    assert len(results) == 9 and all(r.accepted for r in results)
    assert twilio.most_in_flight == 3


@pytest.mark.parametrize(
    ("status", "code", "error_code", "permanent"),
    [
        (400, 21211, "INVALID_PHONE", True),
        (400, 21408, "REGION_NOT_ENABLED", True),
        (400, 21610, "OPTED_OUT", True),
        (400, 21614, "NOT_MOBILE", True),
        (400, 21212, "INVALID_SENDER_ID", True),
        (400, 30001, "QUEUE_OVERFLOW", False),
        (400, 21999, "CARRIER_REJECTED", True),
        (429, 20429, "CARRIER_THROTTLED", False),
        (503, 20500, "CARRIER_UNAVAILABLE", False),
    ],
)
def test_per_recipient_errors_map_to_permanent_or_temporary(
    twilio, status, code, error_code, permanent
):
    twilio.refuse = {TZ2: (status, code, "refused")}
    ok, refused = carrier().send_messages([outbound(TZ), outbound(TZ2)])
    assert ok.accepted
    assert (refused.accepted, refused.error_code, refused.permanent) == (
        False,
        error_code,
        permanent,
    )


def test_a_message_failed_at_submit_is_rejected(twilio):
    twilio.then(
        Reply(201, {"sid": "SMx", "status": "failed", "error_code": 30007, "error_message": "x"})
    )
    [result] = carrier().send_messages([outbound(TZ)])
    assert (result.accepted, result.error_code, result.permanent) == (False, "FILTERED", True)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_for_the_whole_batch_are_a_temporary_carrier_error(twilio, status):
    twilio.then(*[Reply(status, {"code": 20500, "message": "Internal error"})] * 3)
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ), outbound(TZ2), outbound(TZ3)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_UNAVAILABLE"


def test_timeouts_for_the_whole_batch_are_a_temporary_carrier_error(twilio, settings):
    reconfigure(settings, "twilio", TIMEOUT=0.3)
    twilio.then(*[Reply(201, {}, delay=3)] * 2)
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ), outbound(TZ2)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_TIMEOUT"


def test_a_wrong_auth_token_is_a_permanent_auth_error(twilio, settings):
    reconfigure(settings, "twilio", AUTH_TOKEN="not-the-token", CONCURRENCY=1)
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ), outbound(TZ2), outbound(TZ3)])
    assert raised.value.permanent is True and raised.value.code == "CARRIER_AUTH"
    assert "not-the-token" not in str(raised.value)
    assert len(twilio.requests) == 1  # refused credentials are not tried again


# -- status callbacks -------------------------------------------------------------------------


def test_the_signature_matches_twilios_published_example():
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signature("12345", url, {k: [v] for k, v in params.items()}) == expected


def sent_message(account, phones, django_capture_on_commit_callbacks, settings):
    settings.MIFUMO_CARRIER = "twilio"
    with django_capture_on_commit_callbacks(execute=True):
        return message_send(account=account, text="Habari", recipients=phones).message


def callback(twilio: TwilioServer, phone: str, status: str = "delivered", **extra) -> dict:
    sid = next(sid for sid, to in twilio.accepted if to == phone)
    return {
        "AccountSid": TWILIO_SID,
        "From": "MIFUMO",
        "To": phone,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
        **extra,
    }


@pytest.mark.django_db
def test_a_signed_delivered_callback_marks_the_recipient_delivered(
    twilio, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    response = post_callback(client, callback(twilio, TZ))
    assert response.status_code == 200
    recipient = Recipient.objects.get()
    assert recipient.status == "delivered" and recipient.delivered_at is not None


@pytest.mark.django_db
def test_the_configured_public_url_validates_behind_a_proxy(
    twilio, alice, client, settings, django_capture_on_commit_callbacks
):
    public = "https://sms.example.co.tz/api/integration/carriers/twilio/dlr/"
    reconfigure(settings, "twilio", STATUS_CALLBACK_URL=public)
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    # Twilio signs the URL it called; our server sees another host and scheme.
    response = post_callback(client, callback(twilio, TZ), sign_url=public)
    assert response.status_code == 200
    assert Recipient.objects.get().status == "delivered"
    # Twilio's libraries also accept the URL with the default port spelled out.
    with_port = public.replace(".tz/", ".tz:443/")
    response = post_callback(client, callback(twilio, TZ, "sent"), sign_url=with_port)
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["missing", "wrong token", "tampered", "other url"])
def test_a_callback_with_a_bad_signature_is_refused(
    twilio, alice, client, settings, django_capture_on_commit_callbacks, how
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    params = callback(twilio, TZ)
    if how == "missing":
        response = client.post(dlr_url("twilio"), data=params)
    elif how == "wrong token":
        response = post_callback(client, params, token="not-the-token")
    elif how == "tampered":
        good = twilio_signature(TWILIO_TOKEN, CALLBACK, {**params, "MessageStatus": "failed"})
        response = client.post(dlr_url("twilio"), data=params, HTTP_X_TWILIO_SIGNATURE=good)
    else:
        response = post_callback(client, params, sign_url="https://evil.example/dlr/")
    assert response.status_code == 400
    assert response.json()["error"].endswith("X-Twilio-Signature")
    assert Recipient.objects.get().status == "sent"


@pytest.mark.django_db
def test_an_undelivered_callback_fails_the_recipient_with_twilios_error(
    twilio, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    post_callback(client, callback(twilio, TZ, "undelivered", ErrorCode="30003"))
    recipient = Recipient.objects.get()
    assert (recipient.status, recipient.error_code) == ("failed", "UNREACHABLE")


@pytest.mark.django_db
def test_intermediate_statuses_leave_the_recipient_sent(
    twilio, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    for status in ("queued", "sending", "sent"):
        assert post_callback(client, callback(twilio, TZ, status)).status_code == 200
    assert Recipient.objects.get().status == "sent"


@pytest.mark.django_db
def test_the_carriers_done_date_is_the_delivery_time_and_old_ones_are_dropped(
    twilio, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ, TZ2], django_capture_on_commit_callbacks, settings)
    old = (timezone.now() - timedelta(days=10)).strftime("%y%m%d%H%M")
    response = post_callback(client, callback(twilio, TZ, RawDlrDoneDate=old))
    assert response.status_code == 200 and response.json() == {"received": 1, "accepted": 0}
    # Sent ten minutes ago, delivered three minutes ago.
    Recipient.objects.update(sent_at=timezone.now() - timedelta(minutes=10))
    recent = (timezone.now() - timedelta(minutes=3)).replace(second=0, microsecond=0)
    post_callback(client, callback(twilio, TZ2, RawDlrDoneDate=recent.strftime("%y%m%d%H%M")))
    states = {r.phone: (r.status, r.delivered_at) for r in Recipient.objects.all()}
    assert states == {TZ: ("sent", None), TZ2: ("delivered", recent.astimezone(UTC))}


@pytest.mark.django_db
def test_a_done_date_in_the_minute_of_the_send_is_never_before_the_send(
    twilio, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    sent_at = Recipient.objects.get().sent_at
    assert sent_at is not None
    minute = sent_at.strftime("%y%m%d%H%M")  # the send's minute, its seconds cut off
    post_callback(client, callback(twilio, TZ, RawDlrDoneDate=minute))
    recipient = Recipient.objects.get()
    assert recipient.status == "delivered" and recipient.delivered_at == sent_at


@pytest.mark.django_db
def test_the_maximum_age_is_an_option(
    twilio, alice, client, settings, django_capture_on_commit_callbacks
):
    reconfigure(settings, "twilio", DLR_MAX_AGE=60)
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    done = datetime.now(UTC) - timedelta(minutes=5)
    response = post_callback(
        client, callback(twilio, TZ, RawDlrDoneDate=done.strftime("%y%m%d%H%M"))
    )
    assert response.json()["accepted"] == 0
    assert Recipient.objects.get().status == "sent"


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_send_through_twilio_then_its_callback_shows_delivered(
    api, alice, twilio, client, settings, django_capture_on_commit_callbacks
):
    settings.MIFUMO_CARRIER = "twilio"
    with django_capture_on_commit_callbacks(execute=True):
        body = assert_envelope(
            api.post("sms/send/", {"message": "Habari", "recipients": [TZ]}), 200
        )
    message_id = body["data"]["message_id"]
    [request] = twilio.requests
    assert request.form()["StatusCallback"] == CALLBACK
    assert assert_envelope(api.get(f"sms/status/{message_id}/"), 200)["data"]["status"] == "sent"

    for status in ("sent", "delivered"):
        assert post_callback(client, callback(twilio, TZ, status)).status_code == 200

    status = assert_envelope(api.get(f"sms/status/{message_id}/"), 200)["data"]
    assert status["status"] == "delivered"
    assert status["delivery_time"] and status["delivery_time"].endswith("Z")


@pytest.mark.django_db
def test_a_form_body_that_does_not_parse_is_a_json_400(twilio, client):
    response = client.post(
        dlr_url("twilio"),
        data="MessageSid=SM1",
        content_type="multipart/form-data",  # no boundary
        HTTP_X_TWILIO_SIGNATURE="c2lnbmF0dXJl",
    )
    assert response.status_code == 400
    assert "malformed form body" in response.json()["error"]


def test_the_environment_configures_both_public_urls_the_signatures_cover():
    probe = (
        "from django.conf import settings; import json;"
        "print(json.dumps(settings.MIFUMO_CARRIERS['twilio']))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mifumo.settings",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_STATUS_CALLBACK_URL": "https://sms.example.com/api/integration/carriers/twilio/dlr/",
        "TWILIO_INBOUND_URL": "https://sms.example.com/api/integration/carriers/twilio/inbound/",
    }
    code = f"import django; django.setup(); {probe}"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    options = json.loads(result.stdout.strip().splitlines()[-1])
    assert options["STATUS_CALLBACK_URL"].endswith("/twilio/dlr/")
    assert options["INBOUND_URL"] == env["TWILIO_INBOUND_URL"]
