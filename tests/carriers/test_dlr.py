"""The delivery-receipt endpoint shared by the HTTP carriers: routing by carrier name, methods,
validation in every class of the view's tree, de-duplication, staleness, hand-off to the
receipts queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from django.http import HttpRequest
from django.test import Client
from django.utils import timezone

import sms.receipts
from sms.carriers.base import BaseCarrier, DeliveryReceipt, DeliveryStatus
from sms.carriers.dlr import (
    REJECTED_LIMIT,
    DlrRejected,
    DlrView,
    SharedSecretDlrView,
    parse_time,
)
from sms.models import Recipient
from sms.services import message_send

from .http_provider import BEEM_API_KEY, BEEM_SECRET_KEY, BeemServer, configure, dlr_url

pytestmark = pytest.mark.timeout(30)

TZ = "+255712345678"
SECRET = "dlr-secret"


@pytest.fixture
def beem(settings) -> Iterator[BeemServer]:
    with BeemServer() as server:
        configure(
            settings,
            "beem",
            "sms.carriers.beem.BeemCarrier",
            API_KEY=BEEM_API_KEY,
            SECRET_KEY=BEEM_SECRET_KEY,
            DLR_SECRET=SECRET,
            BASE_URL=server.url,
        )
        yield server


@pytest.fixture
def queued(monkeypatch) -> list[DeliveryReceipt]:
    """Receipts handed to the receipts queue (and still ingested as usual)."""
    seen: list[DeliveryReceipt] = []
    enqueue = sms.receipts.enqueue_receipts

    def recording(receipts):
        seen.extend(receipts)
        enqueue(receipts)

    monkeypatch.setattr(sms.receipts, "enqueue_receipts", recording)
    return seen


def post_json(client, name: str, payload: Any, token: str | None = SECRET, path: str | None = None):
    return client.post(
        path or dlr_url(name, token), data=json.dumps(payload), content_type="application/json"
    )


def beem_receipt(request_id: str = "999", dest: str = "255712345678", status: str = "DELIVERED"):
    return {"request_id": request_id, "dest_addr": dest, "status": status}


# -- routing and methods ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_only_post_is_allowed(beem, client, method):
    response = getattr(client, method)(dlr_url("beem", SECRET))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json() == {"error": "method not allowed"}


@pytest.mark.django_db
def test_an_unknown_carrier_name_is_404(client):
    response = post_json(client, "nosuchcarrier", beem_receipt())
    assert response.status_code == 404 and response.json() == {"error": "unknown carrier"}


@pytest.mark.django_db
def test_a_carrier_without_http_receipts_is_404(client):
    response = post_json(client, "simulator", beem_receipt())
    assert response.status_code == 404


@pytest.mark.django_db
def test_the_url_names_the_configured_carrier_not_the_backend(settings, client, queued, beem):
    configure(
        settings,
        "beem-backup",
        "sms.carriers.beem.BeemCarrier",
        API_KEY="k",
        SECRET_KEY="s",
        DLR_SECRET="other-secret",
    )
    assert post_json(client, "beem-backup", beem_receipt(), token=SECRET).status_code == 400
    response = post_json(client, "beem-backup", beem_receipt(), token="other-secret")
    assert response.status_code == 200
    assert [r.carrier for r in queued] == ["beem-backup"]


@pytest.mark.django_db
def test_the_trailing_slash_is_optional(beem, client, queued):
    path = dlr_url("beem").rstrip("/") + f"?token={SECRET}"
    assert post_json(client, "beem", beem_receipt(), path=path).status_code == 200
    assert len(queued) == 1


@pytest.mark.django_db
def test_csrf_is_not_required(beem, queued):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post_json(strict, "beem", beem_receipt()).status_code == 200


@pytest.mark.django_db
def test_a_missing_dlr_secret_is_a_server_error_so_the_provider_retries(settings, client):
    configure(settings, "beem", "sms.carriers.beem.BeemCarrier", API_KEY="k", SECRET_KEY="s")
    response = post_json(client, "beem", beem_receipt())
    assert response.status_code == 500
    assert response.json() == {"error": "receipts are not configured"}


# -- bodies -----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ("[]", "application/json"),
        ('["a", "b"]', "application/json"),
        ("", "application/x-www-form-urlencoded"),
        ("request_id=1", "multipart/form-data"),  # no boundary
        ("--x\r\nnot a part", "multipart/form-data; boundary=x"),
        (json.dumps({"dest_addr": "255712345678", "status": "DELIVERED"}), "application/json"),
        (json.dumps({"request_id": "1", "dest_addr": "255712345678"}), "application/json"),
    ],
)
def test_malformed_bodies_are_400(beem, client, queued, body, content_type):
    response = client.post(dlr_url("beem", SECRET), data=body, content_type=content_type)
    assert response.status_code == 400 and "error" in response.json()
    assert queued == []


@pytest.mark.django_db
def test_json_sent_as_text_is_still_read(beem, client, queued):
    body = json.dumps(beem_receipt())
    response = client.post(dlr_url("beem", SECRET), data=body, content_type="text/plain")
    assert response.status_code == 200 and len(queued) == 1


# -- de-duplication, staleness, unknown ids ---------------------------------------------------


@pytest.mark.django_db
def test_a_repeated_receipt_is_ignored_but_a_new_status_is_not(beem, client, queued):
    assert post_json(client, "beem", beem_receipt(status="PENDING")).json()["accepted"] == 1
    assert post_json(client, "beem", beem_receipt(status="PENDING")).json() == {
        "received": 1,
        "accepted": 0,
    }
    assert post_json(client, "beem", beem_receipt(status="DELIVERED")).json()["accepted"] == 1
    both = [beem_receipt(status="DELIVERED"), beem_receipt(request_id="1000")]
    assert post_json(client, "beem", both).json() == {"received": 2, "accepted": 1}
    assert [r.status for r in queued] == [
        DeliveryStatus.ENROUTE,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.DELIVERED,
    ]


@pytest.mark.django_db
def test_a_receipt_the_queue_did_not_take_is_not_remembered(beem, client, monkeypatch):
    def broken(receipts):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(sms.receipts, "enqueue_receipts", broken)
    with pytest.raises(RuntimeError):
        post_json(client, "beem", beem_receipt())
    monkeypatch.undo()
    assert post_json(client, "beem", beem_receipt()).json()["accepted"] == 1


@pytest.mark.django_db
def test_receipts_for_ids_we_never_sent_are_answered_200(beem, client, caplog):
    response = post_json(client, "beem", beem_receipt(request_id="never-sent"))
    assert response.status_code == 200
    assert "match no message" in caplog.text


@pytest.mark.django_db
def test_stale_receipts_are_answered_200_and_dropped(beem, client, queued, caplog, settings):
    caplog.set_level("INFO", logger="sms.carriers.dlr")
    old = (timezone.now() - timedelta(days=7, minutes=1)).isoformat()
    fresh = (timezone.now() - timedelta(days=6)).isoformat()
    payload = [
        {**beem_receipt(request_id="1"), "timestamp": old},
        {**beem_receipt(request_id="2"), "timestamp": fresh},
    ]
    assert post_json(client, "beem", payload).json() == {"received": 2, "accepted": 1}
    assert [r.carrier_message_id for r in queued] == ["2:255712345678"]
    assert "stale" in caplog.text


@pytest.mark.django_db
def test_a_receipt_from_the_future_is_dated_now(beem, client, queued):
    future = (timezone.now() + timedelta(hours=3)).isoformat()
    post_json(client, "beem", {**beem_receipt(), "timestamp": future})
    assert queued[0].timestamp <= timezone.now()


def test_provider_times_are_read_in_the_common_shapes():
    expected = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    assert parse_time("2025-03-01T12:30:00Z") == expected
    assert parse_time("2025-03-01 15:30:00+03:00") == expected
    assert parse_time("2025-03-01 12:30:00") == expected
    assert parse_time(str(int(expected.timestamp()))) == expected
    assert parse_time(str(int(expected.timestamp() * 1000))) == expected
    assert parse_time("yesterday") is None and parse_time(None) is None


# -- the receipt reaches the recipient ---------------------------------------------------------


@pytest.mark.django_db
def test_a_queued_receipt_moves_the_stored_recipient_to_delivered(
    beem, alice, client, settings, django_capture_on_commit_callbacks
):
    settings.MIFUMO_CARRIER = "beem"
    with django_capture_on_commit_callbacks(execute=True):
        message = message_send(account=alice, text="Habari", recipients=[TZ]).message
    [(request_id, dest)] = beem.accepted
    recipient = Recipient.objects.get(message=message)
    assert recipient.status == "sent"
    when = (timezone.now() - timedelta(minutes=1)).replace(microsecond=0)
    receipt = {**beem_receipt(request_id, dest), "timestamp": when.isoformat()}
    assert post_json(client, "beem", receipt).status_code == 200
    recipient.refresh_from_db()
    assert (recipient.status, recipient.delivered_at) == ("delivered", when)


# -- validation runs in every class of the tree -----------------------------------------------


class CheckedDlrView(SharedSecretDlrView):
    """Adds its own check and, on purpose, does not call ``super().validate_request``."""

    calls: ClassVar[list[str]] = []

    def validate_request(self, request: HttpRequest) -> None:
        self.calls.append("own")
        if request.headers.get("X-Test-Check") != "ok":
            raise DlrRejected("own check failed")

    def parse_receipts(self, request: HttpRequest) -> list[DeliveryReceipt]:
        return [
            DeliveryReceipt(
                carrier=self.backend.name,
                carrier_message_id="x-1",
                status=DeliveryStatus.DELIVERED,
                timestamp=timezone.now(),
            )
        ]


class CheckedCarrier(BaseCarrier):
    carrier_name = "checked"
    dlr_view: ClassVar[type[DlrView]] = CheckedDlrView


@pytest.fixture
def checked(settings) -> type[CheckedDlrView]:
    configure(settings, "checked", f"{__name__}.CheckedCarrier", DLR_SECRET=SECRET)
    CheckedDlrView.calls.clear()
    return CheckedDlrView


@pytest.mark.django_db
def test_a_subclass_cannot_skip_its_parents_validation(checked, client, queued):
    # Own check passes, but the shared secret of the parent class is wrong.
    response = client.post(dlr_url("checked", "wrong"), data={"a": "1"}, HTTP_X_TEST_CHECK="ok")
    assert response.status_code == 400 and response.json() == {
        "error": "missing or wrong DLR token"
    }
    # The parent's check passes, the subclass's fails.
    response = client.post(dlr_url("checked", SECRET), data={"a": "1"})
    assert response.status_code == 400 and response.json() == {"error": "own check failed"}
    assert checked.calls == ["own"]
    response = client.post(dlr_url("checked", SECRET), data={"a": "1"}, HTTP_X_TEST_CHECK="ok")
    assert response.status_code == 200
    assert [r.carrier_message_id for r in queued] == ["x-1"]


# -- token guessing ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_repeated_bad_tokens_from_one_address_are_throttled(beem):
    guesser = Client(REMOTE_ADDR="203.0.113.99")
    for n in range(REJECTED_LIMIT):
        assert post_json(guesser, "beem", beem_receipt(), token=f"guess-{n}").status_code == 400
    blocked = post_json(guesser, "beem", beem_receipt(), token="guess-again")
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    # Even the right token waits: the address is not trusted for now.
    assert post_json(guesser, "beem", beem_receipt()).status_code == 429
    # The carrier, elsewhere, is not affected.
    carrier = Client(REMOTE_ADDR="198.51.100.40")
    assert post_json(carrier, "beem", beem_receipt()).status_code == 200


@pytest.mark.django_db
def test_a_guesser_past_the_proxy_cannot_get_a_carriers_address_blocked(beem, settings):
    settings.MIFUMO_TRUST_PROXY = True
    settings.MIFUMO_TRUSTED_PROXY_COUNT = 1
    carrier = "198.51.100.40"
    # The guesser reaches the port directly and writes the carrier's address as its own.
    guesser = Client(REMOTE_ADDR="203.0.113.99", HTTP_X_FORWARDED_FOR=carrier)
    for n in range(REJECTED_LIMIT):
        assert post_json(guesser, "beem", beem_receipt(), token=f"guess-{n}").status_code == 400
    assert post_json(guesser, "beem", beem_receipt(), token="guess-again").status_code == 429
    # The carrier's receipts come through the proxy, which adds the address it saw.
    through_proxy = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=carrier)
    assert post_json(through_proxy, "beem", beem_receipt()).status_code == 200


@pytest.mark.django_db
def test_authentic_receipts_never_count_against_the_address(beem):
    carrier = Client(REMOTE_ADDR="198.51.100.41")
    for n in range(REJECTED_LIMIT * 2):
        assert post_json(carrier, "beem", beem_receipt(request_id=str(n))).status_code == 200
    # A malformed but authentic receipt is the carrier's mistake, not a guess.
    for _ in range(REJECTED_LIMIT + 1):
        response = carrier.post(dlr_url("beem", SECRET), data="x", content_type="application/json")
        assert response.status_code == 400
    assert post_json(carrier, "beem", beem_receipt()).status_code == 200
