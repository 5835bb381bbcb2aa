"""Inbound SMS: list, one, and the simulator's inbound for test keys."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from inbox import selectors
from inbox import serializers as s
from inbox.models import Action
from inbox.services import NumberError, inbound_data, inbound_receive, normalise_number, route
from integration.auth import api_principal
from integration.idempotency import idempotent
from integration.models import Account, Permission
from integration.views import ApiView
from mifumo.api.docs import envelope_responses
from mifumo.api.pagination import choice_param, date_range_params, paginate_pages
from mifumo.api.responses import ok
from mifumo.errors import DomainError, ErrorCode

E = ErrorCode
TAG = "Inbound SMS"
ACTIONS = [a.value for a in Action]
EXAMPLE = {
    "inbound_id": "inb_01J9Z8Q4W5X6Y7Z8A9B0C1D2E3",
    "from": "+255712345678",
    "to": "15555",
    "text": "STOP",
    "keyword": "DUKA",
    "action": "opt_out",
    "received_at": "2024-01-01T10:00:00Z",
    "carrier": "beem",
    "contact_id": "con_01J9Z8Q4W5X6Y7Z8A9B0C1D2E4",
    "in_reply_to": "msg_01J9Z8Q4W5X6Y7Z8A9B0C1D2E5",
}


def _number_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return normalise_number(raw)
    except NumberError as exc:
        raise DomainError(E.VALIDATION_ERROR, str(exc), {name: [str(exc)]}) from None


class InboundListApi(ApiView):
    @extend_schema(
        summary="List inbound messages",
        operation_id="sms_inbound_list",
        description="Messages the account's numbers received, newest first.",
        tags=[TAG],
        parameters=[
            OpenApiParameter("from", str, required=False, description="the sender"),
            OpenApiParameter("to", str, required=False, description="the receiving number"),
            OpenApiParameter("keyword", str, required=False),
            OpenApiParameter("action", str, required=False, enum=ACTIONS),
            OpenApiParameter("start_date", str, required=False),
            OpenApiParameter("end_date", str, required=False),
            OpenApiParameter("page", int, required=False),
            OpenApiParameter("per_page", int, required=False),
        ],
        responses=envelope_responses(s.InboundListOut, errors=[E.VALIDATION_ERROR]),
    )
    def get(self, request: Request) -> Response:
        principal = api_principal(request)
        start, end = date_range_params(request)
        rows = selectors.inbound_list(
            account=principal.account,
            sender=_number_param(request, "from"),
            destination=_number_param(request, "to"),
            keyword=request.query_params.get("keyword") or None,
            action=choice_param(request, "action", ACTIONS),
            start=start,
            end=end,
            test_only=principal.test_only,
        )
        items, pagination = paginate_pages(request, rows)
        return ok(
            {"inbound": [inbound_data(m) for m in items], "pagination": pagination},
            "Inbound messages retrieved successfully",
        )


class InboundDetailApi(ApiView):
    @extend_schema(
        summary="Get an inbound message",
        tags=[TAG],
        responses=envelope_responses(s.InboundOut, errors=[E.NOT_FOUND], example=EXAMPLE),
    )
    def get(self, request: Request, inbound_id: str) -> Response:
        principal = api_principal(request)
        message = selectors.inbound_get(
            account=principal.account, inbound_id=inbound_id, test_only=principal.test_only
        )
        return ok(inbound_data(message), "Inbound message retrieved successfully")


class InboundSimulateApi(ApiView):
    required_permission = Permission.WRITE

    @extend_schema(
        summary="Simulate an inbound message (test keys)",
        description=(
            "Runs `text` from `from` to `to` (one of the account's numbers) through exactly "
            "what a carrier's inbound goes through: routing, keywords, opt-out, replies and "
            "webhooks. Test keys only: a live key is 403 PERMISSION_DENIED."
        ),
        tags=[TAG],
        request=s.SimulateIn,
        examples=[
            OpenApiExample(
                "stop",
                value={"from": "+255712345678", "to": "+255700000100", "text": "STOP"},
                request_only=True,
            )
        ],
        responses=envelope_responses(
            s.InboundOut,
            status=201,
            errors=[E.VALIDATION_ERROR, E.PERMISSION_DENIED],
            example=EXAMPLE,
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        principal = api_principal(request)
        if not principal.test_only:
            raise DomainError(
                E.PERMISSION_DENIED,
                "Only test keys (mif_test_...) can simulate inbound messages",
            )
        data = s.SimulateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        to = _simulated_number(principal.account, values["to"])
        if route(destination=to, text=values["text"], account=principal.account).number is None:
            raise DomainError(
                E.VALIDATION_ERROR,
                f"{to} is shared by keyword: start the text with one of this account's keywords",
                {"text": ["the first word must be this account's keyword for the number"]},
            )
        message, _ = inbound_receive(
            carrier="simulator",
            sender=values["from"],
            destination=to,
            text=values["text"],
            account=principal.account,
            api_key=principal.api_key,
        )
        return ok(inbound_data(message), "Inbound message simulated", status=201)


def _simulated_number(account: Account, raw: str) -> str:
    try:
        to = normalise_number(raw)
    except NumberError as exc:
        raise DomainError(E.VALIDATION_ERROR, str(exc), {"to": [str(exc)]}) from None
    if not selectors.receives_on(account=account, number=to):
        raise DomainError(
            E.VALIDATION_ERROR,
            f"{to} is not one of this account's numbers",
            {"to": ["must be one of the account's numbers (see the dashboard's numbers page)"]},
        )
    return to
