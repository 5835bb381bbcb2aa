"""The SMS endpoints of the guide (send, status, delivery reports, balance) and around them
(messages, cancel, sender IDs)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from inbox.selectors import reply_recipients_and_sender
from integration.auth import ApiPrincipal, api_principal
from integration.idempotency import idempotent
from integration.models import Account
from integration.selectors import account_balance
from integration.views import ApiView
from message_templates.selectors import template_get
from mifumo.api.docs import envelope_responses, page_parameters
from mifumo.api.errors import ApiError
from mifumo.api.fields import iso, money
from mifumo.api.pagination import (
    choice_param,
    date_range_params,
    page_params,
    paginate,
    paginate_pages,
    paginate_read,
)
from mifumo.api.responses import ok
from mifumo.errors import DomainError, ErrorCode
from sms import selectors
from sms import serializers as s
from sms.models import Message, Recipient, SenderId
from sms.phones import InvalidPhone, normalize_phone
from sms.sender_ids import sender_id_request, sender_ids_all
from sms.services import message_cancel, message_send

E = ErrorCode
ZERO = Decimal("0.00")
STATUSES = [choice.value for choice in Recipient.Status]


def _account(request: Request) -> Account:
    return api_principal(request).account


def _message(request: Request, message_id: str) -> Message:
    principal = api_principal(request)
    return selectors.message_get(
        account=principal.account, message_id=message_id, test_only=principal.test_only
    )


def _status_read(
    request: Request, message_id: str, *, offset: int = 0, limit: int = 0
) -> selectors.StatusRead:
    principal = api_principal(request)
    return selectors.message_status_read(
        account=principal.account,
        message_id=message_id,
        test_only=principal.test_only,
        offset=offset,
        limit=limit,
    )


def _sender_id_row(sender: SenderId) -> dict[str, Any]:
    return {
        "sender_id": sender.value,
        "status": sender.status,
        "purpose": sender.purpose,
        "created_at": iso(sender.created_at),
        "reviewed_at": iso(sender.reviewed_at),
    }


def _recipient_row(row: Recipient, message: Message) -> dict[str, Any]:
    return {
        "phone": row.phone,
        "status": row.status,
        "text": row.text_sent(message),
        "segments": row.segments_sent(message),
        "cost": money(row.cost),
        "delivery_time": iso(row.delivered_at),
        "sent_at": iso(row.sent_at),
        "error_code": row.error_code or None,
        "error_message": row.error_message or None,
    }


def _message_row(
    message: Message, counts: dict[str, int], refunded: Decimal | None
) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "status": selectors.derive_status(counts),
        "text": message.text,
        "sender_id": message.sender_id,
        "recipient_count": message.recipient_count,
        "segments": message.segments,
        "encoding": message.encoding,
        "cost": money(message.cost),
        "refunded": money(refunded or ZERO),
        "currency": message.currency,
        "schedule_time": iso(message.schedule_time),
        "created_at": iso(message.created_at),
        "counts": counts,
    }


SEND_EXAMPLE = {
    "message": "Hello from Mifumo SMS!",
    "recipients": ["+255712345678"],
    "sender_id": "MIFUMO",
}


class SendApi(ApiView):
    rate_limit_bucket = "sms_send"

    @extend_schema(
        summary="Send SMS",
        description=(
            "Validates, prices and charges the message in one step, then queues it for "
            "delivery (or schedules it). Cost = recipients × parts × price per part. "
            "A message with placeholders ({{name}}, {{phone}}, {{KEY}}, {{KEY|default}}), "
            "or a template by `template_id`, is rendered for each recipient from `variables` "
            "and the contact's fields; each text is measured and priced on its own, `cost` is "
            "their sum and `segments` the largest. Send an `Idempotency-Key` header to make "
            "retries safe."
        ),
        tags=["SMS"],
        request=s.SendIn,
        examples=[OpenApiExample("send", value=SEND_EXAMPLE, request_only=True)],
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)
        ],
        responses=envelope_responses(
            s.SendOut,
            errors=[
                E.VALIDATION_ERROR,
                E.INVALID_PHONE,
                E.MESSAGE_TOO_LONG,
                E.INVALID_SENDER_ID,
                E.INVALID_SCHEDULE_TIME,
                E.TOO_MANY_RECIPIENTS,
                E.UNSUPPORTED_DESTINATION,
                E.OPTED_OUT,
                E.INSUFFICIENT_BALANCE,
                E.NOT_FOUND,
                E.CONFLICT,
                E.PAYLOAD_TOO_LARGE,
                E.UNSUPPORTED_MEDIA_TYPE,
            ],
            example={
                "message_id": "msg_01J9Z8Q4W5X6Y7Z8A9B0C1D2E3",
                "recipients": ["+255712345678"],
                "status": "queued",
                "cost": 10.0,
                "currency": "TZS",
                "segments": 1,
                "encoding": "GSM-7",
                "sender_id": "MIFUMO",
                "schedule_time": None,
                "test": False,
                "skipped": [],
                "from_segments": {},
            },
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = s.send_in_common(request.data)
        if values is None:
            data = s.SendIn(data=request.data)
            data.is_valid(raise_exception=True)
            values = data.validated_data
        assert isinstance(request.user, ApiPrincipal)
        return ok(*send(request.user, values))


def send(principal: ApiPrincipal, values: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The send of validated ``values`` (``SendIn``'s data) by ``principal``: the answer's
    data and message. Raises DomainError for a refusal."""
    recipients, sender_id = values["recipients"], values.get("sender_id")
    if values.get("reply_to"):
        recipients, sender_id = reply_recipients_and_sender(
            principal=principal, inbound_id=values["reply_to"], recipients=recipients
        )
    text = values.get("message")
    if text is None:
        text = template_get(account=principal.account, template_id=values["template_id"]).text
    result = message_send(
        account=principal.account,
        api_key=principal.api_key,
        text=text,
        variables=values["variables"],
        recipients=recipients,
        segment_ids=values["segment_ids"],
        sender_id=sender_id,
        schedule_time=values.get("schedule_time"),
        webhook_url=values.get("webhook_url"),
    )
    message = result.message
    body = {
        "message_id": message.id,
        "recipients": result.recipients,
        "status": result.status,
        "cost": money(message.cost),
        "currency": message.currency,
        "segments": message.segments,
        "encoding": message.encoding,
        "sender_id": message.sender_id,
        "schedule_time": iso(message.schedule_time),
        "test": message.is_test,
        "skipped": result.skipped,
        "from_segments": result.from_segments,
    }
    scheduled = result.status == Recipient.Status.SCHEDULED
    return body, "SMS scheduled successfully" if scheduled else "SMS sent successfully"


class StatusApi(ApiView):
    fast_read = True

    @extend_schema(
        summary="Get message status",
        description="Recipients are paginated with `page` and `per_page` (default 100, max "
        "1000); `counts` gives the number of recipients in each status.",
        tags=["SMS"],
        parameters=[
            OpenApiParameter("page", int, required=False),
            OpenApiParameter("per_page", int, required=False),
        ],
        responses=envelope_responses(s.StatusOut, errors=[E.NOT_FOUND, E.VALIDATION_ERROR]),
    )
    def get(self, request: Request, message_id: str) -> Response:
        pages = {"default_per_page": 100, "max_per_page": 1000}
        try:
            page, per_page = page_params(request, **pages)
        except ApiError:
            # Read the message alone: an unknown message is a 404 before bad parameters are
            # a 400, which ``paginate`` raises below.
            page, per_page = 1, 0
        read = _status_read(request, message_id, offset=(page - 1) * per_page, limit=per_page)
        message, counts, delivered = read.message, read.counts, read.delivered
        # The same parameters, read the same way: the page read is the one it asks for.
        rows, pagination = paginate(
            request, lambda: sum(counts.values()), lambda offset, limit: read.recipients, **pages
        )
        status = selectors.derive_status(counts)
        delivery_time = delivered if status in ("delivered", "partially_delivered") else None
        body = {
            "message_id": message.id,
            "status": status,
            "delivery_time": iso(delivery_time),
            "recipients": [_recipient_row(r, message) for r in rows],
            "sender_id": message.sender_id,
            "created_at": iso(message.created_at),
            "schedule_time": iso(message.schedule_time),
            "segments": message.segments,
            "encoding": message.encoding,
            "cost": money(message.cost),
            "refunded": money(read.refunded),
            "currency": message.currency,
            "recipient_count": message.recipient_count,
            "counts": counts,
            "pagination": pagination,
        }
        return ok(body, "Message status retrieved successfully")


class DeliveryReportsApi(ApiView):
    fast_read = True

    @extend_schema(
        summary="Get delivery reports",
        description="One row per recipient, newest first. Dates filter on when the message "
        "was created; a bare date means the start (start_date) or end (end_date) of that day.",
        tags=["SMS"],
        parameters=[
            OpenApiParameter("start_date", str, required=False),
            OpenApiParameter("end_date", str, required=False),
            OpenApiParameter("status", str, required=False, enum=STATUSES),
            OpenApiParameter("page", int, required=False),
            OpenApiParameter("per_page", int, required=False),
        ],
        responses=envelope_responses(s.ReportsOut, errors=[E.VALIDATION_ERROR]),
    )
    def get(self, request: Request) -> Response:
        start, end = date_range_params(request)
        matching = selectors.delivery_reports(
            account=_account(request),
            start=start,
            end=end,
            status=choice_param(request, "status", STATUSES),
            test_only=api_principal(request).test_only,
        )
        items, pagination = paginate_read(request, matching.read)
        reports = [
            {
                "message_id": r.message_id,
                "phone": r.phone,
                "status": r.status,
                "sender_id": r.sender_id,
                "sent_at": r.sent_at,
                "delivery_time": r.delivered_at,
                "error_code": r.error_code or None,
                "cost": money(r.cost),
                "currency": r.currency,
                "created_at": r.created_at,
            }
            for r in items
        ]
        return ok(
            {"reports": reports, "pagination": pagination},
            "Delivery reports retrieved successfully",
        )


class BalanceApi(ApiView):
    fast_read = True

    @extend_schema(
        summary="Get account balance",
        tags=["SMS"],
        responses=envelope_responses(
            s.BalanceOut,
            example={"balance": 5000.0, "currency": "TZS", "last_updated": "2024-01-01T10:00:00Z"},
        ),
    )
    def get(self, request: Request) -> Response:
        account = account_balance(account_id=_account(request).pk)
        return ok(
            {
                "balance": money(account.balance),
                "currency": account.currency,
                "last_updated": iso(account.balance_updated_at),
            },
            "Balance retrieved successfully",
        )


class CancelApi(ApiView):
    @extend_schema(
        summary="Cancel a scheduled message",
        description="The message's cost is refunded. A message already queued cannot be "
        "canceled (409 CONFLICT).",
        tags=["SMS"],
        request=None,
        responses=envelope_responses(s.CancelOut, errors=[E.NOT_FOUND, E.CONFLICT]),
    )
    @idempotent
    def post(self, request: Request, message_id: str) -> Response:
        _message(request, message_id)  # a test key cancels test messages only
        message, canceled, refund = message_cancel(account=_account(request), message_id=message_id)
        return ok(
            {
                "message_id": message.id,
                "status": "canceled",
                "canceled": canceled,
                "refunded": money(refund),
                "currency": message.currency,
            },
            "Message canceled and refunded",
        )


class MessagesApi(ApiView):
    @extend_schema(
        summary="List messages",
        operation_id="sms_messages_list",
        tags=["SMS"],
        parameters=[
            OpenApiParameter("start_date", str, required=False),
            OpenApiParameter("end_date", str, required=False),
            OpenApiParameter("sender_id", str, required=False),
            OpenApiParameter("phone", str, required=False),
            OpenApiParameter("page", int, required=False),
            OpenApiParameter("per_page", int, required=False),
        ],
        responses=envelope_responses(s.MessagesOut, errors=[E.VALIDATION_ERROR]),
    )
    def get(self, request: Request) -> Response:
        phone = request.query_params.get("phone") or None
        if phone:
            try:
                phone = normalize_phone(phone)
            except InvalidPhone as exc:
                raise DomainError(
                    E.VALIDATION_ERROR, f"Invalid phone: {exc.reason}", {"phone": [exc.reason]}
                ) from None
        start, end = date_range_params(request)
        rows = selectors.messages_list(
            account=_account(request),
            start=start,
            end=end,
            sender_id=request.query_params.get("sender_id") or None,
            phone=phone,
            test_only=api_principal(request).test_only,
        )
        items, pagination = paginate_pages(request, rows)
        ids = [m.id for m in items]
        counts = selectors.message_status_counts(message_ids=ids)
        refunds = selectors.message_refunds(account=_account(request), message_ids=ids)
        return ok(
            {
                "messages": [
                    _message_row(m, counts.get(m.id, {}), refunds.get(m.id)) for m in items
                ],
                "pagination": pagination,
            },
            "Messages retrieved successfully",
        )


class MessageDetailApi(ApiView):
    @extend_schema(
        summary="Get a message",
        tags=["SMS"],
        responses=envelope_responses(s.MessageOut, errors=[E.NOT_FOUND]),
    )
    def get(self, request: Request, message_id: str) -> Response:
        read = _status_read(request, message_id)
        return ok(
            _message_row(read.message, read.counts, read.refunded),
            "Message retrieved successfully",
        )


class SenderIdsApi(ApiView):
    @extend_schema(
        summary="List sender IDs",
        description=(
            "The platform default sender ID, approved for every account, comes first; then "
            "the account's own, by name."
        ),
        tags=["Sender IDs"],
        parameters=page_parameters(),
        responses=envelope_responses(s.SenderIdsOut, errors=[E.VALIDATION_ERROR]),
    )
    def get(self, request: Request) -> Response:
        own = sender_ids_all(account=_account(request))
        default = {
            "sender_id": settings.MIFUMO_DEFAULT_SENDER_ID,
            "status": "approved",
            "purpose": "Platform default",
            "created_at": None,
            "reviewed_at": None,
        }

        def read(offset: int, limit: int) -> list[dict[str, Any]]:
            # The default is row 0 of the list; the account's own follow it.
            first = [default] if offset == 0 else []
            start = max(offset - 1, 0)
            return first + [_sender_id_row(x) for x in own[start : start + limit - len(first)]]

        rows, pagination = paginate(request, lambda: 1 + own.count(), read)
        return ok(
            {"sender_ids": rows, "pagination": pagination}, "Sender IDs retrieved successfully"
        )


class SenderIdRequestApi(ApiView):
    @extend_schema(
        summary="Request a sender ID",
        description="An operator reviews the request; it can be used once approved.",
        tags=["Sender IDs"],
        request=s.SenderIdRequestIn,
        responses=envelope_responses(
            s.SenderIdOut, status=201, errors=[E.VALIDATION_ERROR, E.CONFLICT]
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = s.SenderIdRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        sender = sender_id_request(
            account=_account(request),
            value=data.validated_data["sender_id"],
            purpose=data.validated_data["purpose"],
        )
        return ok(
            _sender_id_row(sender),
            "Sender ID requested; it can be used once approved",
            status=201,
        )
