"""The Beem carrier against a local server that answers as Beem's SMS API v1 documents."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from sms.carriers import get_carrier
from sms.carriers.base import CarrierError
from sms.carriers.beem import BeemCarrier, beem_message_id
from sms.carriers.registry import forget_after_fork
from sms.models import Recipient
from sms.services import message_send
from tests.helpers import assert_envelope

from .http_provider import (
    BEEM_API_KEY,
    BEEM_SECRET_KEY,
    BeemServer,
    Reply,
    configure,
    dlr_url,
    outbound,
    reconfigure,
)

pytestmark = pytest.mark.timeout(30)

TZ = "+255712345678"
TZ2 = "+255754000111"
DLR_SECRET = "beem-dlr-secret"


@pytest.fixture
def beem(settings) -> Iterator[BeemServer]:
    with BeemServer() as server:
        configure(
            settings,
            "beem",
            "sms.carriers.beem.BeemCarrier",
            API_KEY=BEEM_API_KEY,
            SECRET_KEY=BEEM_SECRET_KEY,
            DLR_SECRET=DLR_SECRET,
            BASE_URL=server.url,
            TIMEOUT=2,
        )
        yield server
        get_carrier("beem").close()


def carrier() -> BeemCarrier:
    backend = get_carrier("beem")
    assert isinstance(backend, BeemCarrier)
    return backend


def post_dlr(client, payload, token: str | None = DLR_SECRET, **extra):
    return client.post(
        dlr_url("beem", token), data=json.dumps(payload), content_type="application/json", **extra
    )


# -- sending ----------------------------------------------------------------------------------


def test_a_batch_is_one_documented_request_and_each_recipient_gets_its_own_id(beem):
    batch = [outbound(TZ, "Habari"), outbound(TZ2, "Habari")]
    results = carrier().send_messages(batch)

    [request] = beem.requests
    assert request.method == "POST" and request.path == "/v1/send"
    expected_auth = base64.b64encode(f"{BEEM_API_KEY}:{BEEM_SECRET_KEY}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected_auth}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "source_addr": "MIFUMO",
        "encoding": 0,
        "schedule_time": "",
        "message": "Habari",
        "recipients": [
            {"recipient_id": str(batch[0].recipient_id), "dest_addr": "255712345678"},
            {"recipient_id": str(batch[1].recipient_id), "dest_addr": "255754000111"},
        ],
    }
    request_id = beem.accepted[0][0]
    assert [r.accepted for r in results] == [True, True]
    assert results[0].carrier_message_ids == (f"{request_id}:255712345678",)
    assert results[1].carrier_message_ids == (f"{request_id}:255754000111",)


def test_a_text_outside_gsm7_is_sent_with_the_ucs2_encoding(beem):
    carrier().send_messages([outbound(TZ, "Habari 😀")])
    assert beem.requests[0].json()["encoding"] == 8


def test_recipients_are_grouped_by_text_and_chunked(beem, settings):
    reconfigure(settings, "beem", MAX_RECIPIENTS=2)
    batch = [outbound(f"+25571234500{n}", "one") for n in range(3)] + [outbound(TZ2, "two")]
    results = carrier().send_messages(batch)
    sizes = [(r.json()["message"], len(r.json()["recipients"])) for r in beem.requests]
    assert sizes == [("one", 2), ("one", 1), ("two", 1)]
    assert all(r.accepted for r in results)


def test_the_pooled_client_is_reused_and_closed(beem):
    backend = carrier()
    backend.open()
    client = backend._client
    backend.send_messages([outbound()])
    assert backend._client is client
    backend.close()
    assert backend._client is None and client is not None and client.is_closed


def test_a_forked_child_drops_the_parents_pool_without_closing_it(beem):
    backend = carrier()
    backend.open()
    inherited = backend._client
    forget_after_fork()
    assert backend._client is None and inherited is not None and not inherited.is_closed
    [result] = backend.send_messages([outbound()])
    assert result.accepted and backend._client is not inherited
    inherited.close()


def test_invalid_numbers_are_rejected_permanently(beem):
    beem.invalid = {"255712345678"}
    [result] = carrier().send_messages([outbound(TZ)])
    assert not result.accepted and result.permanent
    assert result.error_code == "INVALID_PHONE"
    assert "Invalid phone number" in (result.error_message or "")


def test_an_unregistered_sender_name_is_rejected_permanently(beem):
    beem.then(Reply(400, {"successful": False, "code": 111, "message": "Invalid Sender Id"}))
    [result] = carrier().send_messages([outbound(TZ)])
    assert (result.accepted, result.permanent, result.error_code) == (
        False,
        True,
        "INVALID_SENDER_ID",
    )


def test_an_unknown_failure_code_is_temporary(beem):
    beem.then(Reply(200, {"successful": False, "code": 199, "message": "Try later"}))
    [result] = carrier().send_messages([outbound(TZ)])
    assert not result.accepted and not result.permanent
    assert result.error_code == "CARRIER_REJECTED"


def test_an_empty_beem_balance_fails_the_batch_temporarily(beem):
    beem.then(Reply(200, {"successful": False, "code": 102, "message": "Insufficient balance"}))
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ), outbound(TZ2)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_BALANCE"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_temporary_carrier_errors(beem, status):
    beem.then(Reply(status, "<html>Bad gateway</html>", "text/html"))
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_UNAVAILABLE"


def test_rate_limiting_is_temporary(beem):
    beem.then(Reply(429, {"message": "Too many requests"}))
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_THROTTLED"


def test_a_timeout_is_a_temporary_carrier_error(beem, settings):
    reconfigure(settings, "beem", TIMEOUT=0.3)
    beem.then(Reply(200, {}, delay=3))
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_TIMEOUT"


def test_an_unreachable_provider_is_a_temporary_carrier_error(beem, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    reconfigure(settings, "beem", BASE_URL=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ)])
    assert raised.value.permanent is False and raised.value.code == "CARRIER_UNREACHABLE"


def test_wrong_credentials_are_a_permanent_auth_error_that_names_no_secret(beem, settings):
    reconfigure(settings, "beem", SECRET_KEY="not-the-secret")
    with pytest.raises(CarrierError) as raised:
        carrier().send_messages([outbound(TZ)])
    assert raised.value.permanent is True and raised.value.code == "CARRIER_AUTH"
    assert "not-the-secret" not in str(raised.value)


def test_a_failed_chunk_does_not_undo_an_accepted_one(beem, settings):
    reconfigure(settings, "beem", MAX_RECIPIENTS=1)
    beem.then(None, Reply(503))
    first, second = carrier().send_messages([outbound(TZ), outbound(TZ2)])
    assert first.accepted
    assert not second.accepted and not second.permanent
    assert second.error_code == "CARRIER_UNAVAILABLE"


def test_a_missing_credential_names_the_exact_setting(settings):
    configure(settings, "beem", "sms.carriers.beem.BeemCarrier", API_KEY="k")
    with pytest.raises(ImproperlyConfigured, match=r"MIFUMO_CARRIERS\['beem'\]\['SECRET_KEY'\]"):
        carrier().send_messages([outbound(TZ)])


# -- delivery reports -------------------------------------------------------------------------


def sent_message(account, phones, django_capture_on_commit_callbacks, settings):
    settings.MIFUMO_CARRIER = "beem"
    with django_capture_on_commit_callbacks(execute=True):
        return message_send(account=account, text="Habari", recipients=phones).message


def receipt_for(beem: BeemServer, phone: str, status: str = "DELIVERED", **extra) -> dict:
    request_id, dest = next((rid, d) for rid, d in beem.accepted if d == phone.lstrip("+"))
    return {"request_id": request_id, "dest_addr": dest, "status": status, **extra}


@pytest.mark.django_db
def test_a_receipt_with_the_token_marks_the_recipient_delivered(
    beem, alice, client, settings, django_capture_on_commit_callbacks
):
    message = sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    recipient = Recipient.objects.get(message=message)
    assert recipient.status == "sent"
    assert recipient.carrier == "beem"
    assert recipient.carrier_message_id == beem_message_id(beem.accepted[0][0], TZ)

    response = post_dlr(client, receipt_for(beem, TZ))
    assert response.status_code == 200 and response.json() == {"received": 1, "accepted": 1}
    recipient.refresh_from_db()
    assert recipient.status == "delivered" and recipient.delivered_at is not None


@pytest.mark.django_db
def test_the_token_may_come_in_a_header(
    beem, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    response = post_dlr(
        client, receipt_for(beem, TZ), token=None, HTTP_X_MIFUMO_DLR_TOKEN=DLR_SECRET
    )
    assert response.status_code == 200
    assert Recipient.objects.get().status == "delivered"


@pytest.mark.django_db
@pytest.mark.parametrize("token", [None, "", "wrong", DLR_SECRET + "x"])
def test_a_receipt_without_the_right_token_is_refused(
    beem, alice, client, settings, django_capture_on_commit_callbacks, token
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    response = post_dlr(client, receipt_for(beem, TZ), token=token)
    assert response.status_code == 400
    assert response.json() == {"error": "missing or wrong DLR token"}
    assert Recipient.objects.get().status == "sent"


@pytest.mark.django_db
def test_an_undelivered_receipt_fails_the_recipient_and_keeps_the_raw_payload(
    beem, alice, client, settings, django_capture_on_commit_callbacks, monkeypatch
):
    import sms.receipts

    seen = []
    enqueue = sms.receipts.enqueue_receipts

    def recording(receipts):
        seen.extend(receipts)
        enqueue(receipts)

    monkeypatch.setattr(sms.receipts, "enqueue_receipts", recording)
    sent_message(alice, [TZ, TZ2], django_capture_on_commit_callbacks, settings)
    payload = [receipt_for(beem, TZ, "UNDELIVERED"), receipt_for(beem, TZ2, "PENDING")]
    assert post_dlr(client, payload).json() == {"received": 2, "accepted": 2}
    states = dict(Recipient.objects.values_list("phone", "status"))
    assert states == {TZ: "failed", TZ2: "sent"}
    failed = Recipient.objects.get(phone=TZ)
    assert failed.error_code == "UNDELIVERABLE"
    assert seen[0].raw["status"] == "UNDELIVERED" and seen[0].raw["dest_addr"] == "255712345678"


@pytest.mark.django_db
def test_a_receipt_older_than_the_maximum_age_is_answered_but_dropped(
    beem, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    old = (timezone.now() - timedelta(days=8)).strftime("%Y-%m-%d %H:%M:%S")
    response = post_dlr(client, receipt_for(beem, TZ, timestamp=old))
    assert response.status_code == 200 and response.json() == {"received": 1, "accepted": 0}
    assert Recipient.objects.get().status == "sent"


@pytest.mark.django_db
def test_the_receipt_time_becomes_the_delivery_time(
    beem, alice, client, settings, django_capture_on_commit_callbacks
):
    sent_message(alice, [TZ], django_capture_on_commit_callbacks, settings)
    when = (timezone.now() - timedelta(minutes=5)).replace(microsecond=0)
    post_dlr(client, receipt_for(beem, TZ, timestamp=when.isoformat()))
    assert Recipient.objects.get().delivered_at == when


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_send_through_beem_then_its_receipt_shows_delivered(
    api, alice, beem, client, settings, django_capture_on_commit_callbacks
):
    settings.MIFUMO_CARRIER = "beem"
    with django_capture_on_commit_callbacks(execute=True):
        body = assert_envelope(
            api.post("sms/send/", {"message": "Habari", "recipients": [TZ]}), 200
        )
    message_id = body["data"]["message_id"]
    [request] = beem.requests
    assert request.json()["recipients"][0]["dest_addr"] == "255712345678"
    status = assert_envelope(api.get(f"sms/status/{message_id}/"), 200)["data"]
    assert status["status"] == "sent" and status["delivery_time"] is None

    [(request_id, dest)] = beem.accepted
    receipt = {
        "request_id": request_id,
        "dest_addr": dest,
        "recipient_id": request.json()["recipients"][0]["recipient_id"],
        "status": "DELIVERED",
    }
    assert post_dlr(client, receipt).status_code == 200

    status = assert_envelope(api.get(f"sms/status/{message_id}/"), 200)["data"]
    assert status["status"] == "delivered"
    assert status["delivery_time"] and status["delivery_time"].endswith("Z")
    assert status["recipients"][0]["status"] == "delivered"
