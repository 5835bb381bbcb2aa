"""Reads for webhooks. Another account's ids answer NOT_FOUND, never revealing they exist."""

from __future__ import annotations

from django.db.models import QuerySet

from integration.models import Account
from mifumo.api.errors import ApiError, ErrorCode
from webhooks.models import AccountSigningSecret, Delivery, DeliveryAttempt, Endpoint


def endpoint_list(*, account: Account) -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(account=account).order_by("created_at", "id")


def endpoint_get(*, account: Account, endpoint_id: str) -> Endpoint:
    endpoint = Endpoint.objects.filter(account=account, pk=endpoint_id).first()
    if endpoint is None:
        raise ApiError(ErrorCode.NOT_FOUND, "Webhook not found")
    return endpoint


def delivery_list(
    *,
    account: Account,
    endpoint: Endpoint | None = None,
    message_id: str | None = None,
    status: str | None = None,
) -> QuerySet[Delivery]:
    """Newest first, without the event bodies (up to 500 recipients each)."""
    deliveries = (
        Delivery.objects.filter(account=account).select_related("event").defer("event__body")
    )
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    if message_id is not None:
        deliveries = deliveries.filter(event__message_id=message_id)
    if status is not None:
        deliveries = deliveries.filter(status=status)
    return deliveries.order_by("-created_at", "-id")


def delivery_get(
    *, account: Account, delivery_id: str, endpoint: Endpoint | None = None
) -> Delivery:
    deliveries = Delivery.objects.filter(account=account, pk=delivery_id).select_related(
        "event", "endpoint"
    )
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    delivery = deliveries.first()
    if delivery is None:
        raise ApiError(ErrorCode.NOT_FOUND, "Delivery not found")
    return delivery


def delivery_attempts(*, delivery: Delivery) -> QuerySet[DeliveryAttempt]:
    return DeliveryAttempt.objects.filter(delivery=delivery).order_by("started_at", "id")


def account_signing_secret_find(*, account: Account) -> AccountSigningSecret | None:
    return AccountSigningSecret.objects.filter(account=account).first()
