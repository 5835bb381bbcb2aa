"""Webhook endpoints and deliveries over the API.

Managing endpoints and secrets needs an admin key; reading a message's deliveries needs only
read, like the message status itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from integration.auth import api_principal
from integration.idempotency import idempotent
from integration.models import Account, Permission
from integration.permissions import resolve_mode
from integration.views import ApiView
from mifumo.api.docs import envelope_responses, page_parameters
from mifumo.api.pagination import paginate_pages
from mifumo.api.responses import ok
from mifumo.errors import ErrorCode
from webhooks import selectors
from webhooks import serializers as s
from webhooks.delivery import delivery_redeliver, event_send_test
from webhooks.endpoints import (
    account_signing_secret_ensure,
    account_signing_secret_rotate,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_update,
)
from webhooks.models import Delivery, Endpoint

TAG = ["Webhooks"]
NOT_FOUND = [ErrorCode.NOT_FOUND]
VALIDATION = [ErrorCode.VALIDATION_ERROR]
PAGE_PARAMETERS = [
    OpenApiParameter("page", int, description="Page number (default 1)"),
    OpenApiParameter("per_page", int, description="Items per page (default 50, at most 100)"),
    OpenApiParameter("status", str, enum=[c.value for c in Delivery.Status]),
]


def _account(request: Request) -> Account:
    return api_principal(request).account


def _endpoint(request: Request, webhook_id: str) -> Endpoint:
    principal = api_principal(request)
    return selectors.endpoint_get(
        account=principal.account, endpoint_id=webhook_id, test_only=principal.test_only
    )


def _delivery(request: Request, delivery_id: str, endpoint: Endpoint | None = None) -> Delivery:
    principal = api_principal(request)
    return selectors.delivery_get(
        account=principal.account,
        delivery_id=delivery_id,
        endpoint=endpoint,
        test_only=principal.test_only,
    )


def _valid(serializer_class: type[Any], data: Any, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _optional_body(request: Request) -> Any:
    """The body of a route whose fields are all optional: no body (or an empty one) is no
    field given; anything else, ``false`` or ``[]`` included, is for the serializer to judge."""
    data = request.data
    if data is None or (isinstance(data, Mapping) and not data):
        return {}
    return data


def _page(deliveries: QuerySet[Delivery], params: dict[str, Any]) -> dict[str, Any]:
    page, per_page = params["page"], params["per_page"]
    total = deliveries.count()
    rows = deliveries[(page - 1) * per_page : page * per_page]
    return {
        "deliveries": [s.delivery_data(d) for d in rows],
        "pagination": {
            "page": page,
            "per_page": per_page,
            "total": total,
            "pages": math.ceil(total / per_page) if total else 0,
        },
    }


class WebhookListApi(ApiView):
    required_permission = Permission.ADMIN
    replay_holds_secret = True

    @extend_schema(
        operation_id="webhooks_list",
        summary="List webhook endpoints",
        description="Oldest first.",
        tags=TAG,
        parameters=page_parameters(),
        responses=envelope_responses(s.EndpointListOut, errors=VALIDATION),
    )
    def get(self, request: Request) -> Response:
        principal = api_principal(request)
        endpoints, pagination = paginate_pages(
            request,
            selectors.endpoint_list(account=principal.account, test_only=principal.test_only),
        )
        return ok(
            {"webhooks": [s.endpoint_data(e) for e in endpoints], "pagination": pagination},
            "Webhooks retrieved successfully",
        )

    @extend_schema(
        operation_id="webhooks_create",
        summary="Create a webhook endpoint",
        description="The signing secret is in this response only (and after a rotation).",
        tags=TAG,
        request=s.EndpointCreateIn,
        responses=envelope_responses(s.EndpointSecretOut, status=201, errors=VALIDATION),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = _valid(s.EndpointCreateIn, request.data)
        principal = api_principal(request)
        data["test"] = resolve_mode(principal, data.get("test"), "webhook endpoints")
        endpoint = endpoint_create(account=principal.account, **data)
        return ok(
            s.endpoint_data(endpoint, with_secret=True),
            "Webhook created; store the signing secret now, it is not shown again",
            status=201,
        )


class WebhookDetailApi(ApiView):
    required_permission = Permission.ADMIN

    @extend_schema(
        operation_id="webhooks_get",
        summary="Get a webhook endpoint",
        tags=TAG,
        responses=envelope_responses(s.EndpointOut, errors=NOT_FOUND),
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        endpoint = _endpoint(request, webhook_id)
        return ok(s.endpoint_data(endpoint), "Webhook retrieved successfully")

    @extend_schema(
        operation_id="webhooks_update",
        summary="Update a webhook endpoint",
        tags=TAG,
        request=s.EndpointUpdateIn,
        responses=envelope_responses(s.EndpointOut, errors=[*NOT_FOUND, *VALIDATION]),
    )
    def patch(self, request: Request, webhook_id: str) -> Response:
        endpoint = _endpoint(request, webhook_id)
        data = _valid(s.EndpointUpdateIn, request.data)
        endpoint = endpoint_update(endpoint=endpoint, **data)
        return ok(s.endpoint_data(endpoint), "Webhook updated")

    @extend_schema(
        operation_id="webhooks_delete",
        summary="Delete a webhook endpoint and its delivery history",
        tags=TAG,
        responses=envelope_responses(s.EndpointDeletedOut, errors=NOT_FOUND),
    )
    def delete(self, request: Request, webhook_id: str) -> Response:
        endpoint = _endpoint(request, webhook_id)
        endpoint_delete(endpoint=endpoint)
        return ok({"id": webhook_id, "deleted": True}, "Webhook deleted")


class WebhookTestApi(ApiView):
    required_permission = Permission.ADMIN
    # It calls the receiver while the client waits; a repeat simply sends another test.
    idempotent_post = False

    @extend_schema(
        operation_id="webhooks_test",
        summary="Send a message.test event to the endpoint now",
        description="Tried once, not retried; the answer carries the attempt's result.",
        tags=TAG,
        request=None,
        responses=envelope_responses(s.DeliveryDetailOut, errors=NOT_FOUND),
    )
    def post(self, request: Request, webhook_id: str) -> Response:
        endpoint = _endpoint(request, webhook_id)
        delivery = event_send_test(endpoint=endpoint, api_key=api_principal(request).api_key)
        attempts = list(selectors.delivery_attempts(delivery=delivery))
        succeeded = delivery.status == Delivery.Status.SUCCEEDED
        return ok(
            s.delivery_detail_data(delivery, attempts),
            "Test event delivered" if succeeded else "Test event delivery failed",
        )


class WebhookRotateSecretApi(ApiView):
    required_permission = Permission.ADMIN
    replay_holds_secret = True

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        summary="Rotate the endpoint's signing secret",
        description="The old secret keeps signing beside the new one for the grace period.",
        tags=TAG,
        request=s.RotateIn,
        responses=envelope_responses(s.EndpointSecretOut, errors=[*NOT_FOUND, *VALIDATION]),
    )
    @idempotent
    def post(self, request: Request, webhook_id: str) -> Response:
        endpoint = _endpoint(request, webhook_id)
        data = _valid(s.RotateIn, _optional_body(request))
        endpoint = endpoint_rotate_secret(
            endpoint=endpoint, grace_seconds=data["grace_period_seconds"]
        )
        return ok(
            s.endpoint_data(endpoint, with_secret=True),
            "Signing secret rotated; store the new secret now",
        )


class WebhookDeliveriesApi(ApiView):
    required_permission = Permission.ADMIN

    @extend_schema(
        operation_id="webhooks_endpoint_deliveries",
        summary="List an endpoint's deliveries, newest first",
        tags=TAG,
        parameters=[
            OpenApiParameter("message_id", str, description="Only this message's deliveries"),
            *PAGE_PARAMETERS,
        ],
        responses=envelope_responses(s.DeliveryPageOut, errors=[*NOT_FOUND, *VALIDATION]),
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        endpoint = _endpoint(request, webhook_id)
        params = _valid(s.MessageDeliveriesIn, request.query_params)
        deliveries = selectors.delivery_list(
            account=_account(request),
            endpoint=endpoint,
            message_id=params.get("message_id"),
            status=params.get("status"),
        )
        return ok(_page(deliveries, params), "Deliveries retrieved successfully")


class WebhookDeliveryApi(ApiView):
    required_permission = Permission.ADMIN

    @extend_schema(
        operation_id="webhooks_endpoint_delivery",
        summary="Get one of an endpoint's deliveries with every attempt",
        tags=TAG,
        responses=envelope_responses(s.DeliveryDetailOut, errors=NOT_FOUND),
    )
    def get(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        endpoint = _endpoint(request, webhook_id)
        delivery = _delivery(request, delivery_id, endpoint)
        attempts = list(selectors.delivery_attempts(delivery=delivery))
        return ok(s.delivery_detail_data(delivery, attempts), "Delivery retrieved successfully")


class WebhookRedeliverApi(ApiView):
    required_permission = Permission.ADMIN

    @extend_schema(
        operation_id="webhooks_endpoint_redeliver",
        summary="Send a finished delivery's event again",
        description="Queues a new delivery of the same event (same event_id and body).",
        tags=TAG,
        request=None,
        responses=envelope_responses(
            s.DeliveryOut, status=202, errors=[*NOT_FOUND, ErrorCode.CONFLICT]
        ),
    )
    @idempotent
    def post(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        endpoint = _endpoint(request, webhook_id)
        delivery = _delivery(request, delivery_id, endpoint)
        again = delivery_redeliver(delivery=delivery)
        return ok(s.delivery_data(again), "Redelivery queued", status=202)


class DeliveryListApi(ApiView):
    required_permission = Permission.READ

    @extend_schema(
        operation_id="webhooks_deliveries",
        summary="List deliveries, e.g. of one message (its own webhook_url included)",
        tags=TAG,
        parameters=[
            OpenApiParameter("message_id", str, description="Only this message's deliveries"),
            *PAGE_PARAMETERS,
        ],
        responses=envelope_responses(s.DeliveryPageOut, errors=VALIDATION),
    )
    def get(self, request: Request) -> Response:
        params = _valid(s.MessageDeliveriesIn, request.query_params)
        principal = api_principal(request)
        deliveries = selectors.delivery_list(
            account=principal.account,
            message_id=params.get("message_id"),
            status=params.get("status"),
            test_only=principal.test_only,
        )
        return ok(_page(deliveries, params), "Deliveries retrieved successfully")


class DeliveryDetailApi(ApiView):
    required_permission = Permission.READ

    @extend_schema(
        operation_id="webhooks_delivery",
        summary="Get a delivery with every attempt",
        tags=TAG,
        responses=envelope_responses(s.DeliveryDetailOut, errors=NOT_FOUND),
    )
    def get(self, request: Request, delivery_id: str) -> Response:
        delivery = _delivery(request, delivery_id)
        attempts = list(selectors.delivery_attempts(delivery=delivery))
        return ok(s.delivery_detail_data(delivery, attempts), "Delivery retrieved successfully")


class DeliveryRedeliverApi(ApiView):
    required_permission = Permission.ADMIN

    @extend_schema(
        operation_id="webhooks_delivery_redeliver",
        summary="Send a finished delivery's event again (any destination)",
        tags=TAG,
        request=None,
        responses=envelope_responses(
            s.DeliveryOut, status=202, errors=[*NOT_FOUND, ErrorCode.CONFLICT]
        ),
    )
    @idempotent
    def post(self, request: Request, delivery_id: str) -> Response:
        delivery = _delivery(request, delivery_id)
        again = delivery_redeliver(delivery=delivery)
        return ok(s.delivery_data(again), "Redelivery queued", status=202)


class SigningSecretApi(ApiView):
    required_permission = Permission.ADMIN

    @extend_schema(
        operation_id="webhooks_signing_secret",
        summary="The account's signing secret for message-level webhook_url deliveries",
        description=(
            "Deliveries to the webhook_url given with a send have no endpoint, so they are "
            "signed with this per-account secret (made on first use). Live and test traffic "
            "have a secret each: a test key reads (and rotates) the test one."
        ),
        tags=TAG,
        responses=envelope_responses(s.SigningSecretOut),
    )
    def get(self, request: Request) -> Response:
        principal = api_principal(request)
        holder = account_signing_secret_ensure(
            account_id=principal.account.pk, test=principal.test_only
        )
        return ok(s.signing_secret_data(holder), "Signing secret retrieved successfully")


class SigningSecretRotateApi(ApiView):
    required_permission = Permission.ADMIN
    replay_holds_secret = True

    @extend_schema(
        operation_id="webhooks_signing_secret_rotate",
        summary="Rotate the account's signing secret for message-level deliveries",
        tags=TAG,
        request=s.RotateIn,
        responses=envelope_responses(s.SigningSecretOut, errors=VALIDATION),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = _valid(s.RotateIn, _optional_body(request))
        principal = api_principal(request)
        holder = account_signing_secret_rotate(
            account_id=principal.account.pk,
            grace_seconds=data["grace_period_seconds"],
            test=principal.test_only,
        )
        return ok(s.signing_secret_data(holder), "Signing secret rotated")
