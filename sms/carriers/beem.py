"""Beem Africa (beem.africa), the common SMS aggregator in Tanzania: SMS API v1.

Sending: ``POST {BASE_URL}/v1/send`` with HTTP Basic auth (API_KEY:SECRET_KEY) and a JSON body
``{"source_addr", "encoding", "schedule_time": "", "message", "recipients": [{"recipient_id",
"dest_addr"}]}``, one request per sender and text (chunked by MAX_RECIPIENTS). ``dest_addr`` is
the E.164 number without "+"; ``recipient_id`` is our Recipient id. ``encoding`` is 0 for a
GSM-7 text and 8 for UCS-2 (the SMPP data_coding values Beem's gateway passes on).

Beem answers ``{"successful", "request_id", "code", "message", "valid", "invalid",
"duplicates"}``: one request id for the whole request and only *counts* of invalid numbers.
Carrier message ids: Beem's delivery reports name ``request_id`` and ``dest_addr``, so each
recipient's id is ``"<request_id>:<dest_addr>"`` (e.g. ``"35918915:255712345678"``), which the
receipt rebuilds from the same two fields. When Beem counts some numbers invalid it does not
say which: every recipient of the request is recorded as sent, and those that never get a
receipt expire after MIFUMO_RECEIPT_TIMEOUT_SECONDS (our own validation makes this rare).

Beem's failure codes (the "code" field when ``successful`` is false):

====  ==========================  =======================================================
code  our error code              outcome
====  ==========================  =======================================================
101   INVALID_PHONE               permanent, every recipient of the request
102   CARRIER_BALANCE             temporary, the whole batch (top up the Beem account)
103   UNSUPPORTED_NETWORK         permanent
104   CARRIER_REQUEST             permanent (missing parameters: retrying cannot help)
105   CARRIER_REQUEST             permanent (invalid parameters)
111   INVALID_SENDER_ID           permanent (sender name not registered with Beem)
120   CARRIER_AUTH                permanent, the whole batch (wrong API_KEY/SECRET_KEY)
else  CARRIER_REJECTED            temporary (retried up to MIFUMO_MAX_SUBMIT_ATTEMPTS)
====  ==========================  =======================================================

Delivery reports: Beem POSTs JSON (one object or a list) with ``request_id``, ``dest_addr``,
``status`` (DELIVERED, UNDELIVERED, PENDING, ...) and, on some accounts, ``recipient_id`` and a
``timestamp``. Beem does not sign callbacks, so the callback URL must carry DLR_SECRET:
``https://<host>/api/integration/carriers/<name>/dlr/?token=<DLR_SECRET>``.

Options: API_KEY, SECRET_KEY (required), DLR_SECRET (required for receipts), BASE_URL
(https://apisms.beem.africa), TIMEOUT (10 s), MAX_RECIPIENTS (100 per request),
MAX_CONNECTIONS (10), DLR_MAX_AGE (seconds, 7 days).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
from django.http import HttpRequest
from django.utils import timezone

from sms.carriers.base import (
    CarrierError,
    DeliveryReceipt,
    DeliveryStatus,
    OutboundSms,
    SubmitResult,
)
from sms.carriers.dlr import (
    DlrView,
    SharedSecretDlrView,
    parse_time,
    raw_of,
    request_data,
    required,
)
from sms.carriers.http import ChunkedHttpCarrier, ChunkRequest, chunked, group_by_text
from sms.carriers.inbound import InboundSms
from sms.carriers.inbound_http import InboundMixin
from sms.encoding import UCS2, analyze

logger = logging.getLogger(__name__)

SEND_PATH = "/v1/send"
DEFAULT_MAX_RECIPIENTS = 100
CODE_SUBMITTED = 100

# code -> (our error code, permanent, fails the whole batch)
FAILURE_CODES: dict[int, tuple[str, bool, bool]] = {
    101: ("INVALID_PHONE", True, False),
    102: ("CARRIER_BALANCE", False, True),
    103: ("UNSUPPORTED_NETWORK", True, False),
    104: ("CARRIER_REQUEST", True, False),
    105: ("CARRIER_REQUEST", True, False),
    111: ("INVALID_SENDER_ID", True, False),
    120: ("CARRIER_AUTH", True, True),
}

RECEIPT_STATUSES = {
    "DELIVERED": DeliveryStatus.DELIVERED,
    "DELIVRD": DeliveryStatus.DELIVERED,
    "UNDELIVERED": DeliveryStatus.UNDELIVERABLE,
    "UNDELIV": DeliveryStatus.UNDELIVERABLE,
    "UNDELIVERABLE": DeliveryStatus.UNDELIVERABLE,
    "FAILED": DeliveryStatus.UNDELIVERABLE,
    "EXPIRED": DeliveryStatus.EXPIRED,
    "REJECTED": DeliveryStatus.REJECTED,
    "REJECTD": DeliveryStatus.REJECTED,
    "PENDING": DeliveryStatus.ENROUTE,
    "SENT": DeliveryStatus.ENROUTE,
    "SUBMITTED": DeliveryStatus.ENROUTE,
    "ACCEPTED": DeliveryStatus.ENROUTE,
    "ENROUTE": DeliveryStatus.ENROUTE,
}


def dest_addr(phone: str) -> str:
    return "".join(char for char in str(phone) if char.isdigit())


def beem_message_id(request_id: object, phone: str) -> str:
    """The per-recipient id recorded at submit and rebuilt from each receipt."""
    return f"{str(request_id).strip()}:{dest_addr(phone)}"


def receipt_status(value: str) -> DeliveryStatus:
    return RECEIPT_STATUSES.get(value.strip().upper(), DeliveryStatus.UNKNOWN)


class BeemDlrView(SharedSecretDlrView):
    def parse_receipts(self, request: HttpRequest) -> list[DeliveryReceipt]:
        receipts = []
        for item in request_data(request):
            receipts.append(
                DeliveryReceipt(
                    carrier=self.backend.name,
                    carrier_message_id=beem_message_id(
                        required(item, "request_id"), required(item, "dest_addr")
                    ),
                    status=receipt_status(required(item, "status")),
                    timestamp=parse_time(item.get("timestamp")) or timezone.now(),
                    raw=raw_of(item),
                )
            )
        return receipts


def _beem_text(item: dict[str, Any]) -> str:
    message = item.get("message")
    if isinstance(message, dict):
        message = message.get("text")
    return str(message if message is not None else item.get("text") or "")


class BeemInboundView(InboundMixin, SharedSecretDlrView):
    """Beem's two-way SMS callback. Beem publishes little about its body, so the fields are
    read under the names its callbacks and other Beem APIs use (README: Beem, inbound)."""

    def parse_inbound(self, request: HttpRequest) -> list[InboundSms]:
        return [
            InboundSms(
                carrier=self.backend.name,
                sender=required(item, "from", "source_addr", "msisdn"),
                destination=required(item, "to", "dest_addr", "shortcode"),
                text=_beem_text(item),
                carrier_message_id=required(item, "transaction_id", "message_id", "id"),
                received_at=parse_time(item.get("timeUTC") or item.get("timestamp")),
                raw=raw_of(item),
            )
            for item in request_data(request)
        ]


class BeemCarrier(ChunkedHttpCarrier):
    carrier_name = "beem"
    default_base_url = "https://apisms.beem.africa"
    dlr_view: ClassVar[type[DlrView]] = BeemDlrView
    inbound_view: ClassVar[type[DlrView]] = BeemInboundView

    def auth(self) -> httpx.Auth:
        return httpx.BasicAuth(str(self.setting("API_KEY")), str(self.setting("SECRET_KEY")))

    def build_payload(self, batch: Sequence[OutboundSms]) -> list[ChunkRequest]:
        size = int(self.setting("MAX_RECIPIENTS", DEFAULT_MAX_RECIPIENTS))
        requests = []
        for (sender, text), group in group_by_text(batch).items():
            encoding = 8 if analyze(text).encoding == UCS2 else 0
            for chunk in chunked(group, size):
                body = {
                    "source_addr": sender,
                    "encoding": encoding,
                    "schedule_time": "",
                    "message": text,
                    "recipients": [
                        {"recipient_id": str(sms.recipient_id), "dest_addr": dest_addr(sms.to)}
                        for sms in chunk
                    ],
                }
                requests.append(ChunkRequest(chunk, body))
        return requests

    def submit_chunk(self, request: ChunkRequest) -> list[SubmitResult]:
        response = self.request("POST", SEND_PATH, json=request.payload)
        body = self.json_body(response)
        if not isinstance(body, dict):
            raise CarrierError(f"{self.name}: unexpected answer", code="CARRIER_BAD_RESPONSE")
        # Failures are sometimes wrapped as {"data": {"code": ..., "message": ...}}.
        wrapped = body.get("data")
        data: dict[str, Any] = wrapped if isinstance(wrapped, dict) else body
        code = _int(body.get("code", data.get("code")))
        text = str(body.get("message") or data.get("message") or "")[:200]
        if body.get("successful") is True or (code == CODE_SUBMITTED and response.is_success):
            request_id = body.get("request_id")
            if request_id in (None, ""):
                raise CarrierError(
                    f"{self.name}: accepted without a request_id", code="CARRIER_BAD_RESPONSE"
                )
            if _int(body.get("invalid")) or _int(body.get("duplicates")):
                logger.warning(
                    "%s request %s: %s invalid and %s duplicate numbers of %d",
                    self.name,
                    request_id,
                    body.get("invalid"),
                    body.get("duplicates"),
                    len(request.recipients),
                )
            return [
                SubmitResult.ok(sms, beem_message_id(request_id, sms.to))
                for sms in request.recipients
            ]
        error_code, permanent, whole_batch = FAILURE_CODES.get(
            code if code is not None else -1, ("CARRIER_REJECTED", False, False)
        )
        message = f"Beem: {text or 'rejected'} (code {code})"
        if whole_batch:
            raise CarrierError(message, permanent=permanent, code=error_code)
        return [
            SubmitResult.rejected(sms, error_code, message, permanent=permanent)
            for sms in request.recipients
        ]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
