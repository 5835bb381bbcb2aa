"""Reads for webhooks. Another account's ids answer NOT_FOUND, never revealing they exist."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from integration.models import Account
from mifumo.db import column, table
from mifumo.errors import DomainError, ErrorCode
from sms.models import Message, Recipient
from webhooks.models import (
    AccountSigningSecret,
    AccountTestSigningSecret,
    Delivery,
    DeliveryAttempt,
    Endpoint,
)

# Ids per IN list: one query for any ordinary batch, and within every database's limit on
# query parameters.
IDS_PER_QUERY = 5000

T = TypeVar("T")


# ``test_only``: what a test key may see, test endpoints and test traffic alone.


def _endpoints(account: Account, test_only: bool) -> QuerySet[Endpoint]:
    endpoints = Endpoint.objects.filter(account=account)
    return endpoints.filter(is_test=True) if test_only else endpoints


def endpoint_list(*, account: Account, test_only: bool = False) -> QuerySet[Endpoint]:
    return _endpoints(account, test_only).order_by("created_at", "id")


def endpoint_get(*, account: Account, endpoint_id: str, test_only: bool = False) -> Endpoint:
    endpoint = _endpoints(account, test_only).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Webhook not found")
    return endpoint


def delivery_list(
    *,
    account: Account,
    endpoint: Endpoint | None = None,
    message_id: str | None = None,
    status: str | None = None,
    test_only: bool = False,
) -> QuerySet[Delivery]:
    """Newest first, without the event bodies (up to 500 recipients each)."""
    deliveries = (
        Delivery.objects.filter(account=account).select_related("event").defer("event__body")
    )
    if test_only:
        deliveries = deliveries.filter(event__is_test=True)
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    if message_id is not None:
        deliveries = deliveries.filter(event__message_id=message_id)
    if status is not None:
        deliveries = deliveries.filter(status=status)
    return deliveries.order_by("-created_at", "-id")


def delivery_get(
    *,
    account: Account,
    delivery_id: str,
    endpoint: Endpoint | None = None,
    test_only: bool = False,
) -> Delivery:
    deliveries = Delivery.objects.filter(account=account, pk=delivery_id).select_related(
        "event", "endpoint"
    )
    if test_only:
        deliveries = deliveries.filter(event__is_test=True)
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    delivery = deliveries.first()
    if delivery is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Delivery not found")
    return delivery


def delivery_attempts(*, delivery: Delivery) -> QuerySet[DeliveryAttempt]:
    return DeliveryAttempt.objects.filter(delivery=delivery).order_by("started_at", "id")


def endpoint_delivery_stats(*, endpoints: Iterable[Endpoint]) -> dict[str, dict[str, Any]]:
    """Per endpoint: deliveries in the last 7 days by outcome, and the latest one's time."""
    ids = [e.pk for e in endpoints]
    since = timezone.now() - timedelta(days=7)
    rows = (
        Delivery.objects.filter(endpoint_id__in=ids, created_at__gte=since)
        .values("endpoint_id")
        .annotate(
            total=Count("pk"),
            failed=Count("pk", filter=Q(status=Delivery.Status.FAILED)),
            succeeded=Count("pk", filter=Q(status=Delivery.Status.SUCCEEDED)),
        )
        .order_by()
    )
    return {row["endpoint_id"]: row for row in rows}


def deliveries_failed_count(*, account: Account, since: datetime) -> int:
    return Delivery.objects.filter(
        account=account, status=Delivery.Status.FAILED, created_at__gte=since
    ).count()


def endpoints_disabled_count(*, account: Account) -> int:
    return Endpoint.objects.filter(account=account, active=False).count()


def account_signing_secret_find(
    *, account: Account, test: bool = False
) -> AccountSigningSecret | AccountTestSigningSecret | None:
    if test:
        return AccountTestSigningSecret.objects.filter(account=account).first()
    return AccountSigningSecret.objects.filter(account=account).first()


# --- what status-change events are built from ---------------------------------------------------


class EventMessage(NamedTuple):
    account_id: int
    api_key_id: int | None
    source: str
    sender_id: str
    cost: Decimal
    currency: str
    webhook_url: str
    is_test: bool
    # The account has an active endpoint of the message's kind (test or live).
    has_endpoints: bool


class EventRecipient(NamedTuple):
    phone: str
    delivered_at: datetime | None


def _chunks(ids: Collection[T]) -> Iterator[list[T]]:
    ordered = list(ids)
    for start in range(0, len(ordered), IDS_PER_QUERY):
        yield ordered[start : start + IDS_PER_QUERY]


@functools.cache
def _event_messages_sql() -> str:
    message = functools.partial(column, Message)
    endpoint = functools.partial(column, Endpoint)
    fields = ", ".join(
        f"m.{message(name)}"
        for name in (
            "id",
            "account",
            "api_key",
            "source",
            "sender_id",
            "cost",
            "currency",
            "webhook_url",
            "is_test",
        )
    )
    return (
        f"SELECT {fields}, EXISTS (SELECT 1 FROM {table(Endpoint)} e"  # noqa: S608 - names from the models
        f" WHERE e.{endpoint('account')} = m.{message('account')} AND e.{endpoint('active')}"
        f" AND e.{endpoint('is_test')} = m.{message('is_test')})"
        f" FROM {table(Message)} m WHERE m.{message('id')} = ANY(%s)"
    )


def event_messages(*, message_ids: Collection[str]) -> dict[str, EventMessage]:
    """The messages by id, with what their events carry and where they go, and whether
    their account has an active endpoint for their kind of traffic (test or live); tuples
    rather than models, as a receipts batch reads hundreds of them. One statement written
    once: this runs for every batch of status changes, most of them with nowhere to go."""
    with connection.cursor() as cursor:
        cursor.execute(_event_messages_sql(), [list(message_ids)])
        return {row[0]: EventMessage(*row[1:]) for row in cursor.fetchall()}


def event_recipients(*, recipient_ids: Collection[int]) -> dict[int, EventRecipient]:
    found: dict[int, EventRecipient] = {}
    for chunk in _chunks(recipient_ids):
        rows = Recipient.objects.filter(pk__in=chunk).values_list("id", "phone", "delivered_at")
        for recipient_id, phone, delivered_at in rows:
            found[recipient_id] = EventRecipient(phone, delivered_at)
    return found


def endpoints_active(*, account_ids: Sequence[int]) -> dict[int, list[Endpoint]]:
    """The accounts' active endpoints, each account's in creation order."""
    by_account: dict[int, list[Endpoint]] = defaultdict(list)
    if not account_ids:
        return by_account
    endpoints = (
        Endpoint.objects.filter(account_id__in=account_ids, active=True)
        .only("id", "account_id", "url", "events", "is_test")
        .order_by("created_at", "id")
    )
    for endpoint in endpoints:
        by_account[endpoint.account_id].append(endpoint)
    return by_account
