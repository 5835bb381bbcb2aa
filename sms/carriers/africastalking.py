"""Africa's Talking (africastalking.com): the SMS messaging API, version 1.

Sending: ``POST {BASE_URL}/version1/messaging``, form-encoded ``username``, ``to`` (E.164
numbers, comma-separated), ``message`` and ``from`` (the sender ID), with the ``apiKey`` header
and ``Accept: application/json``; one request per sender and text, chunked by MAX_RECIPIENTS.
The answer lists one entry per number in ``SMSMessageData.Recipients`` with ``number``,
``status``, ``statusCode``, ``messageId`` and ``cost``; ``messageId`` is the carrier id that
delivery reports name.

``statusCode`` per recipient:

====  =====================  ==========================  =========================================
code  status                 our error code              outcome
====  =====================  ==========================  =========================================
100   Processed              -                           accepted
101   Sent                   -                           accepted
102   Queued                 -                           accepted
401   RiskHold               RISK_HOLD                   permanent: the same text is held again
402   InvalidSenderId        INVALID_SENDER_ID           permanent
403   InvalidPhoneNumber     INVALID_PHONE               permanent
404   UnsupportedNumberType  UNSUPPORTED_NUMBER_TYPE     permanent
405   InsufficientBalance    CARRIER_BALANCE             temporary: succeeds once topped up
406   UserInBlacklist        BLACKLISTED                 permanent: the subscriber opted out
407   CouldNotRoute          NO_ROUTE                    temporary: routes come back
409   DoNotDisturbRejection  DND_REJECTED                permanent
500   InternalServerError    CARRIER_INTERNAL_ERROR      temporary
501   GatewayError           GATEWAY_ERROR               temporary
502   RejectedByGateway      REJECTED_BY_GATEWAY         permanent
else  -                      CARRIER_REJECTED            temporary
====  =====================  ==========================  =========================================

Temporary rejections are retried with backoff, at most MIFUMO_MAX_SUBMIT_ATTEMPTS times, then
failed and refunded.

Delivery reports: Africa's Talking POSTs a form with ``id`` (the messageId), ``status``
(Success, Sent, Submitted, Buffered, Rejected, Failed, Expired), ``phoneNumber``,
``networkCode``, ``failureReason`` and ``retryCount`` to the URL set in its dashboard. The
reports are not signed, so the URL carries DLR_SECRET:
``https://<host>/api/integration/carriers/<name>/dlr/?token=<DLR_SECRET>``.

Options: USERNAME, API_KEY (required), DLR_SECRET (required for receipts), BASE_URL (default
https://api.africastalking.com, or https://api.sandbox.africastalking.com when USERNAME is
"sandbox"), TIMEOUT (10 s), MAX_RECIPIENTS (1000 per request), MAX_CONNECTIONS (10),
DLR_MAX_AGE (seconds, 7 days; the reports carry no timestamp, so it never applies today).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any, ClassVar

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

SEND_PATH = "/version1/messaging"
LIVE_URL = "https://api.africastalking.com"
SANDBOX_URL = "https://api.sandbox.africastalking.com"
SANDBOX_USERNAME = "sandbox"
DEFAULT_MAX_RECIPIENTS = 1000

ACCEPTED_CODES = frozenset({100, 101, 102})

# statusCode -> (our error code, permanent)
FAILURE_CODES: dict[int, tuple[str, bool]] = {
    401: ("RISK_HOLD", True),
    402: ("INVALID_SENDER_ID", True),
    403: ("INVALID_PHONE", True),
    404: ("UNSUPPORTED_NUMBER_TYPE", True),
    405: ("CARRIER_BALANCE", False),
    406: ("BLACKLISTED", True),
    407: ("NO_ROUTE", False),
    409: ("DND_REJECTED", True),
    500: ("CARRIER_INTERNAL_ERROR", False),
    501: ("GATEWAY_ERROR", False),
    502: ("REJECTED_BY_GATEWAY", True),
}
FAILURE_NAMES = {
    "RiskHold": 401,
    "InvalidSenderId": 402,
    "InvalidPhoneNumber": 403,
    "UnsupportedNumberType": 404,
    "InsufficientBalance": 405,
    "UserInBlacklist": 406,
    "CouldNotRoute": 407,
    "DoNotDisturbRejection": 409,
    "InternalServerError": 500,
    "GatewayError": 501,
    "RejectedByGateway": 502,
}

RECEIPT_STATUSES = {
    "success": DeliveryStatus.DELIVERED,
    "sent": DeliveryStatus.ENROUTE,
    "submitted": DeliveryStatus.ENROUTE,
    "buffered": DeliveryStatus.ENROUTE,
    "rejected": DeliveryStatus.REJECTED,
    "failed": DeliveryStatus.UNDELIVERABLE,
    "expired": DeliveryStatus.EXPIRED,
}


def receipt_status(value: str) -> DeliveryStatus:
    return RECEIPT_STATUSES.get(value.strip().lower(), DeliveryStatus.UNKNOWN)


def _digits(phone: object) -> str:
    return "".join(char for char in str(phone) if char.isdigit())


class AfricasTalkingDlrView(SharedSecretDlrView):
    def parse_receipts(self, request: HttpRequest) -> list[DeliveryReceipt]:
        receipts = []
        for item in request_data(request):
            status = receipt_status(required(item, "status"))
            reason = str(item.get("failureReason") or "").strip()
            receipts.append(
                DeliveryReceipt(
                    carrier=self.backend.name,
                    carrier_message_id=required(item, "id"),
                    status=status,
                    timestamp=timezone.now(),
                    error_code=reason[:40] if reason and status.is_final else None,
                    raw=raw_of(item),
                )
            )
        return receipts


class AfricasTalkingInboundView(InboundMixin, SharedSecretDlrView):
    """The "incoming messages" callback: a form with from, to, text, id, date, linkId (and
    networkCode), authenticated with the same token as receipts."""

    def parse_inbound(self, request: HttpRequest) -> list[InboundSms]:
        return [
            InboundSms(
                carrier=self.backend.name,
                sender=required(item, "from"),
                destination=required(item, "to"),
                text=str(item.get("text") or ""),
                carrier_message_id=required(item, "id"),
                received_at=parse_time(item.get("date")),
                raw=raw_of(item),
            )
            for item in request_data(request)
        ]


class AfricasTalkingCarrier(ChunkedHttpCarrier):
    carrier_name = "africastalking"
    dlr_view: ClassVar[type[DlrView]] = AfricasTalkingDlrView
    inbound_view: ClassVar[type[DlrView]] = AfricasTalkingInboundView
    # Refused at submit (406), or reported so in a receipt's failureReason.
    opt_out_errors: ClassVar[frozenset[str]] = frozenset({"BLACKLISTED", "UserInBlackList"})

    @property
    def base_url(self) -> str:
        sandbox = str(self.setting("USERNAME")) == SANDBOX_USERNAME
        return str(self.setting("BASE_URL", SANDBOX_URL if sandbox else LIVE_URL)).rstrip("/")

    def headers(self) -> dict[str, str]:
        return {"apiKey": str(self.setting("API_KEY"))}

    def build_payload(self, batch: Sequence[OutboundSms]) -> list[ChunkRequest]:
        username = str(self.setting("USERNAME"))
        size = int(self.setting("MAX_RECIPIENTS", DEFAULT_MAX_RECIPIENTS))
        requests = []
        for (sender, text), group in group_by_text(batch).items():
            for chunk in chunked(group, size):
                form = {"username": username, "to": ",".join(s.to for s in chunk), "message": text}
                if sender:
                    form["from"] = sender
                requests.append(ChunkRequest(chunk, form))
        return requests

    def submit_chunk(self, request: ChunkRequest) -> list[SubmitResult]:
        response = self.request("POST", SEND_PATH, data=request.payload)
        if response.status_code >= 400:
            if response.status_code not in (400, 422):
                raise CarrierError(
                    f"{self.name}: unexpected answer (HTTP {response.status_code})",
                    code="CARRIER_BAD_RESPONSE",
                )
            # A request Africa's Talking will never take; it explains why in plain text.
            text = response.text.strip()[:200] or f"HTTP {response.status_code}"
            return [
                SubmitResult.rejected(sms, "CARRIER_REQUEST", f"Africa's Talking: {text}")
                for sms in request.recipients
            ]
        body = self.json_body(response)
        data = body.get("SMSMessageData") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise CarrierError(f"{self.name}: unexpected answer", code="CARRIER_BAD_RESPONSE")
        entries = data.get("Recipients") or []
        if not entries:
            return self._whole_request_refused(request, str(data.get("Message") or ""))
        by_number: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for entry in entries:
            if isinstance(entry, dict):
                by_number[_digits(entry.get("number"))].append(entry)
        results = []
        for sms in request.recipients:
            queue = by_number.get(_digits(sms.to))
            if queue:
                results.append(self._result(sms, queue.popleft()))
        return results

    def _result(self, sms: OutboundSms, entry: dict[str, Any]) -> SubmitResult:
        code = _int(entry.get("statusCode"))
        status = str(entry.get("status") or "")
        message_id = str(entry.get("messageId") or "")
        if code in ACCEPTED_CODES and message_id and message_id != "None":
            return SubmitResult.ok(sms, message_id)
        error_code, permanent = FAILURE_CODES.get(
            code if code is not None else -1, ("CARRIER_REJECTED", False)
        )
        return SubmitResult.rejected(
            sms,
            error_code,
            f"Africa's Talking: {status or 'rejected'} ({code})",
            permanent=permanent,
        )

    def _whole_request_refused(self, request: ChunkRequest, message: str) -> list[SubmitResult]:
        """No per-number entries: the message names the reason (e.g. "InvalidSenderId")."""
        code = next((c for name, c in FAILURE_NAMES.items() if name in message), None)
        error_code, permanent = FAILURE_CODES.get(
            code if code is not None else -1, ("CARRIER_REJECTED", False)
        )
        text = f"Africa's Talking: {message[:200] or 'no recipient accepted'}"
        return [
            SubmitResult.rejected(sms, error_code, text, permanent=permanent)
            for sms in request.recipients
        ]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
