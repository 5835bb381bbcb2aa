"""Twilio Programmable Messaging (REST API 2010-04-01).

Sending: one request per recipient, ``POST {BASE_URL}/2010-04-01/Accounts/{ACCOUNT_SID}/
Messages.json``, form-encoded ``To``, ``Body``, ``From`` (the FROM option, else the message's
sender ID) or ``MessagingServiceSid`` (when MESSAGING_SERVICE_SID is set), and
``StatusCallback`` (STATUS_CALLBACK_URL); HTTP Basic auth ACCOUNT_SID:AUTH_TOKEN. A batch's
requests run concurrently on at most CONCURRENCY threads over the carrier's connection pool.
Twilio answers 201 with the message's ``sid`` (our carrier id) and ``status``, or an error
``{"code", "message", "more_info", "status"}``:

=====  =========================  ============================================================
code   our error code             outcome
=====  =========================  ============================================================
21211  INVALID_PHONE              permanent (not a valid "To" number)
21212  INVALID_SENDER_ID          permanent (not a valid "From")
21606  INVALID_SENDER_ID          permanent ("From" cannot send SMS)
21408  REGION_NOT_ENABLED         permanent (geographic permission off in the Twilio console)
21610  OPTED_OUT                  permanent (the recipient replied STOP)
21612  NO_ROUTE                   permanent (Twilio cannot route From -> To)
21614  NOT_MOBILE                 permanent
21617  MESSAGE_TOO_LONG           permanent
20429  CARRIER_THROTTLED          temporary (also any HTTP 429)
30001  QUEUE_OVERFLOW             temporary
30002  ACCOUNT_SUSPENDED          permanent
30003  UNREACHABLE                permanent (30003-30008 mostly arrive in delivery reports)
30004  BLOCKED                    permanent
30005  UNKNOWN_DESTINATION        permanent
30006  LANDLINE                   permanent
30007  FILTERED                   permanent
30008  UNKNOWN_ERROR              temporary
other  CARRIER_REJECTED           permanent for a 4xx (Twilio validated and refused the request)
=====  =========================  ============================================================

HTTP 401/403 stop the batch with ``CarrierError(permanent=True, code="CARRIER_AUTH")``; 5xx,
timeouts and unreachable hosts fail only that recipient's request, temporarily, unless every
request of the batch failed that way, in which case the batch raises ``CarrierError``.

Delivery reports: Twilio POSTs a form with ``MessageSid``, ``MessageStatus`` (queued, sending,
sent, delivered, undelivered, failed, ...), ``ErrorCode`` and, for some carriers,
``RawDlrDoneDate`` (YYMMDDhhmm, UTC) to StatusCallback, signed in ``X-Twilio-Signature``:
base64(HMAC-SHA1(AUTH_TOKEN, URL + each POST parameter name and value, sorted by name)). The
URL is the one Twilio called; STATUS_CALLBACK_URL is tried first, then the URL the request
reached us on (right only when proxies pass the original host and scheme), each with and
without the default port, as Twilio's own validators do.

Options: ACCOUNT_SID, AUTH_TOKEN (required); STATUS_CALLBACK_URL (the DLR URL, e.g.
``https://<host>/api/integration/carriers/<name>/dlr/``); MESSAGING_SERVICE_SID; FROM;
BASE_URL (https://api.twilio.com); TIMEOUT (10 s); CONCURRENCY (4); MAX_CONNECTIONS (10);
DLR_MAX_AGE (seconds, 7 days).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from sms.carriers.base import (
    CarrierError,
    DeliveryReceipt,
    DeliveryStatus,
    OutboundSms,
    SubmitResult,
)
from sms.carriers.dlr import DlrRejected, DlrView, form_of, raw_of, request_data, required
from sms.carriers.http import HttpCarrier, Outcome, settle
from sms.carriers.inbound import InboundSms
from sms.carriers.inbound_http import InboundMixin

API_VERSION = "2010-04-01"
DEFAULT_CONCURRENCY = 4
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
SIGNATURE_HEADER = "X-Twilio-Signature"

# Twilio error code -> (our error code, permanent)
ERROR_CODES: dict[int, tuple[str, bool]] = {
    21211: ("INVALID_PHONE", True),
    21212: ("INVALID_SENDER_ID", True),
    21606: ("INVALID_SENDER_ID", True),
    21408: ("REGION_NOT_ENABLED", True),
    21610: ("OPTED_OUT", True),
    21612: ("NO_ROUTE", True),
    21614: ("NOT_MOBILE", True),
    21617: ("MESSAGE_TOO_LONG", True),
    20429: ("CARRIER_THROTTLED", False),
    30001: ("QUEUE_OVERFLOW", False),
    30002: ("ACCOUNT_SUSPENDED", True),
    30003: ("UNREACHABLE", True),
    30004: ("BLOCKED", True),
    30005: ("UNKNOWN_DESTINATION", True),
    30006: ("LANDLINE", True),
    30007: ("FILTERED", True),
    30008: ("UNKNOWN_ERROR", False),
}
FAILED_AT_SUBMIT = frozenset({"failed", "undelivered", "canceled"})

RECEIPT_STATUSES = {
    "accepted": DeliveryStatus.ENROUTE,
    "scheduled": DeliveryStatus.ENROUTE,
    "queued": DeliveryStatus.ENROUTE,
    "sending": DeliveryStatus.ENROUTE,
    "sent": DeliveryStatus.ENROUTE,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERABLE,
    # Twilio never handed these to a network.
    "failed": DeliveryStatus.REJECTED,
    "canceled": DeliveryStatus.REJECTED,
}


def receipt_status(value: str) -> DeliveryStatus:
    return RECEIPT_STATUSES.get(value.strip().lower(), DeliveryStatus.UNKNOWN)


def error_name(code: object) -> str | None:
    """Our name for a Twilio error code, or the code itself when we have none."""
    number = _int(code)
    if number is None or number == 0:
        return None
    known = ERROR_CODES.get(number)
    return known[0] if known else str(number)


def signature(auth_token: str, url: str, params: Mapping[str, Iterable[str]]) -> str:
    """The value Twilio puts in X-Twilio-Signature for a form POST to ``url``."""
    signed = url + "".join(
        name + value for name in sorted(params) for value in sorted(set(params[name]))
    )
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> list[str]:
    """``url`` as given, and with its default port removed or added."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if default is not None and parts.port in (None, default) and "@" not in parts.netloc:
        host = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
        variants += [
            urlunsplit(parts._replace(netloc=host)),
            urlunsplit(parts._replace(netloc=f"{host}:{default}")),
        ]
    return list(dict.fromkeys(variants))


def parse_done_date(value: Any) -> datetime | None:
    text = str(value or "").strip()
    formats = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}
    if not text.isdigit() or len(text) not in formats:
        return None
    try:
        return datetime.strptime(text, formats[len(text)]).replace(tzinfo=UTC)
    except ValueError:
        return None


class TwilioDlrView(DlrView):
    def validate_request(self, request: HttpRequest) -> None:
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not given:
            raise DlrRejected(f"missing {SIGNATURE_HEADER}")
        token = str(self.backend.setting("AUTH_TOKEN"))
        form = form_of(request)
        params = {name: form.getlist(name) for name in form}
        urls = [self.configured_url(), request.build_absolute_uri()]
        for url in urls:
            for candidate in url_variants(url) if url else ():
                expected = signature(token, candidate, params)
                if hmac.compare_digest(expected.encode(), given.encode()):
                    return
        raise DlrRejected(f"bad {SIGNATURE_HEADER}")

    def configured_url(self) -> str:
        """The public URL Twilio was given for these callbacks, which it signs."""
        return str(self.backend.setting("STATUS_CALLBACK_URL", ""))

    def parse_receipts(self, request: HttpRequest) -> list[DeliveryReceipt]:
        receipts = []
        for item in request_data(request):
            status = receipt_status(required(item, "MessageStatus", "SmsStatus"))
            failed = status.is_final and status is not DeliveryStatus.DELIVERED
            done = parse_done_date(item.get("RawDlrDoneDate"))
            receipts.append(
                DeliveryReceipt(
                    carrier=self.backend.name,
                    carrier_message_id=required(item, "MessageSid", "SmsSid"),
                    status=status,
                    timestamp=done or timezone.now(),
                    error_code=error_name(item.get("ErrorCode")) if failed else None,
                    raw=raw_of(item),
                    # YYMMDDhhmm: the minute only, so never dated before the send.
                    to_the_minute=done is not None
                    and len(str(item.get("RawDlrDoneDate")).strip()) == 10,
                )
            )
        return receipts


class TwilioInboundView(InboundMixin, TwilioDlrView):
    """Messages to a Twilio number: its "A message comes in" webhook, form-encoded
    (From, To, Body, MessageSid, ...), signed like the status callbacks."""

    def configured_url(self) -> str:
        return str(self.backend.setting("INBOUND_URL", ""))

    def parse_inbound(self, request: HttpRequest) -> list[InboundSms]:
        return [
            InboundSms(
                carrier=self.backend.name,
                sender=required(item, "From"),
                destination=required(item, "To"),
                text=str(item.get("Body") or ""),
                carrier_message_id=required(item, "MessageSid", "SmsSid"),
                raw=raw_of(item),
            )
            for item in request_data(request)
        ]

    def stored(self, items: list[InboundSms]) -> HttpResponse:
        # Twilio reads the answer as TwiML: an empty Response sends no reply of its own.
        return HttpResponse(EMPTY_TWIML, content_type="text/xml")


class TwilioCarrier(HttpCarrier):
    carrier_name = "twilio"
    default_base_url = "https://api.twilio.com"
    dlr_view: ClassVar[type[DlrView]] = TwilioDlrView
    inbound_view: ClassVar[type[DlrView]] = TwilioInboundView
    # Errors that mean the phone opted out with the carrier: it joins the opt-out list.
    opt_out_errors: ClassVar[frozenset[str]] = frozenset({"OPTED_OUT"})

    def auth(self) -> httpx.Auth:
        return httpx.BasicAuth(str(self.setting("ACCOUNT_SID")), str(self.setting("AUTH_TOKEN")))

    @property
    def messages_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.setting('ACCOUNT_SID')}/Messages.json"

    def build_payload(
        self, batch: Sequence[OutboundSms]
    ) -> list[tuple[OutboundSms, dict[str, str]]]:
        service = str(self.setting("MESSAGING_SERVICE_SID", ""))
        sender = str(self.setting("FROM", ""))
        callback = str(self.setting("STATUS_CALLBACK_URL", ""))
        payload = []
        for sms in batch:
            form = {"To": sms.to, "Body": sms.text}
            if service:
                form["MessagingServiceSid"] = service
            else:
                form["From"] = sender or sms.sender_id
            if callback:
                form["StatusCallback"] = callback
            payload.append((sms, form))
        return payload

    def post_to_carrier(
        self, payload: list[tuple[OutboundSms, dict[str, str]]], batch: Sequence[OutboundSms]
    ) -> dict[int, Outcome]:
        path = self.messages_path
        refused: list[CarrierError] = []

        def submit(sms: OutboundSms, form: dict[str, str]) -> Outcome:
            if refused:
                return refused[0]  # credentials already refused: do not knock again
            try:
                return self._submit(sms, path, form)
            except CarrierError as exc:
                if exc.code == "CARRIER_AUTH":
                    refused.append(exc)
                return exc

        self.open()
        workers = max(1, min(int(self.setting("CONCURRENCY", DEFAULT_CONCURRENCY)), len(payload)))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"{self.name}-submit") as pool:
            futures = [(sms, pool.submit(submit, sms, form)) for sms, form in payload]
            return {sms.recipient_id: future.result() for sms, future in futures}

    def parse_recipient_status(
        self, response: dict[int, Outcome], batch: Sequence[OutboundSms]
    ) -> list[SubmitResult]:
        return settle(batch, response)

    def _submit(self, sms: OutboundSms, path: str, form: dict[str, str]) -> SubmitResult:
        response = self.request("POST", path, data=form)
        body = self.json_body(response)
        if not isinstance(body, dict):
            raise CarrierError(f"{self.name}: unexpected answer", code="CARRIER_BAD_RESPONSE")
        if response.is_success:
            sid = str(body.get("sid") or "")
            if not sid:
                raise CarrierError(
                    f"{self.name}: answer without a sid", code="CARRIER_BAD_RESPONSE"
                )
            if str(body.get("status")) in FAILED_AT_SUBMIT:
                code = _int(body.get("error_code"))
                return self._rejected(sms, code, str(body.get("error_message") or "failed"))
            return SubmitResult.ok(sms, sid)
        return self._rejected(sms, _int(body.get("code")), str(body.get("message") or ""))

    def _rejected(self, sms: OutboundSms, code: int | None, text: str) -> SubmitResult:
        error_code, permanent = ERROR_CODES.get(
            code if code is not None else -1, ("CARRIER_REJECTED", True)
        )
        return SubmitResult.rejected(
            sms, error_code, f"Twilio {code or 'error'}: {text[:200]}", permanent=permanent
        )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
