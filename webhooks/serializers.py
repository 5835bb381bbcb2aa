from __future__ import annotations

from typing import Any

from rest_framework import serializers

from mifumo.api.fields import iso
from mifumo.api.serializers import PagePaginationOut, PrebuiltFieldsSerializer, StrictSerializer
from webhooks.endpoints import DEFAULT_GRACE_SECONDS, MAX_GRACE_SECONDS
from webhooks.models import (
    SUBSCRIBABLE_EVENTS,
    AccountSigningSecret,
    AccountTestSigningSecret,
    Delivery,
    DeliveryAttempt,
    Endpoint,
    EventType,
)

MAX_PER_PAGE = 100

# --- input -----------------------------------------------------------------------------------


class EndpointCreateIn(StrictSerializer):
    url = serializers.CharField(help_text="http(s) URL of a public host; at most 2000 characters")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS),
        allow_empty=False,
        required=False,
        help_text="Events to receive; every one when omitted",
    )
    active = serializers.BooleanField(default=True)
    description = serializers.CharField(max_length=255, allow_blank=True, default="")
    test = serializers.BooleanField(
        required=False,
        help_text="A test endpoint receives test traffic only, a live one live traffic only; "
        "the calling key's mode when omitted (a test key makes test endpoints only)",
    )


class EndpointUpdateIn(StrictSerializer):
    url = serializers.CharField(required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS),
        allow_empty=False,
        required=False,
    )
    active = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=255, allow_blank=True, required=False)


class RotateIn(StrictSerializer):
    grace_period_seconds = serializers.IntegerField(
        min_value=0,
        max_value=MAX_GRACE_SECONDS,
        default=DEFAULT_GRACE_SECONDS,
        help_text="How long the old secret keeps signing beside the new one (0: stop now)",
    )


class PageIn(PrebuiltFieldsSerializer):
    page = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
    per_page = serializers.IntegerField(min_value=1, max_value=MAX_PER_PAGE, default=50)
    status = serializers.ChoiceField(choices=Delivery.Status.choices, required=False)


class MessageDeliveriesIn(PageIn):
    message_id = serializers.CharField(max_length=40, required=False)


# --- output ----------------------------------------------------------------------------------


class EndpointOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    mode = serializers.ChoiceField(choices=["live", "test"])
    description = serializers.CharField()
    disabled_reason = serializers.CharField(allow_null=True)
    disabled_at = serializers.DateTimeField(allow_null=True)
    secret_rotated_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EndpointSecretOut(EndpointOut):
    secret = serializers.CharField(help_text="The signing secret (whsec_…); shown only here")


class EndpointListOut(serializers.Serializer[Any]):
    webhooks = EndpointOut(many=True)
    pagination = PagePaginationOut()


class EndpointDeletedOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    deleted = serializers.BooleanField()


class AttemptOut(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    url = serializers.CharField()
    succeeded = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.FloatField()
    error = serializers.CharField(allow_null=True)
    response = serializers.CharField(help_text="The first 500 bytes of the response body")


class DeliveryOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    event_id = serializers.CharField()
    event = serializers.ChoiceField(choices=EventType.choices)
    message_id = serializers.CharField(allow_null=True)
    webhook_id = serializers.CharField(
        allow_null=True, help_text="Null for the message's own webhook_url"
    )
    url = serializers.CharField()
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    redelivery = serializers.BooleanField()
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    response = serializers.CharField(help_text="The first 500 bytes of the last response")
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


class DeliveryDetailOut(DeliveryOut):
    payload = serializers.JSONField()
    attempt_log = AttemptOut(many=True)


class DeliveryPageOut(serializers.Serializer[Any]):
    deliveries = DeliveryOut(many=True)
    pagination = PagePaginationOut()


class SigningSecretOut(serializers.Serializer[Any]):
    secret = serializers.CharField()
    previous_secret_expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    secret_rotated_at = serializers.DateTimeField(allow_null=True)


# --- rendering -------------------------------------------------------------------------------


def endpoint_data(endpoint: Endpoint, *, with_secret: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "active": endpoint.active,
        "mode": "test" if endpoint.is_test else "live",
        "description": endpoint.description,
        "disabled_reason": endpoint.disabled_reason or None,
        "disabled_at": iso(endpoint.disabled_at),
        "secret_rotated_at": iso(endpoint.secret_rotated_at),
        "created_at": iso(endpoint.created_at),
        "updated_at": iso(endpoint.updated_at),
    }
    if with_secret:
        data["secret"] = endpoint.secret
    return data


def delivery_data(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event": delivery.event.type,
        "message_id": delivery.event.message_id,
        "webhook_id": delivery.endpoint_id,
        "url": delivery.url,
        "status": delivery.status,
        "redelivery": delivery.redelivery,
        "attempts": delivery.attempts,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_attempt_at": iso(delivery.last_attempt_at),
        "last_status_code": delivery.last_status_code,
        "latency_ms": delivery.last_latency_ms,
        "error": delivery.last_error or None,
        "response": delivery.last_response,
        "created_at": iso(delivery.created_at),
        "completed_at": iso(delivery.completed_at),
    }


def attempt_data(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": iso(attempt.started_at),
        "url": attempt.url,
        "succeeded": attempt.succeeded,
        "status_code": attempt.status_code,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error or None,
        "response": attempt.response_head,
    }


def delivery_detail_data(delivery: Delivery, attempts: list[DeliveryAttempt]) -> dict[str, Any]:
    return {
        **delivery_data(delivery),
        "payload": delivery.event.payload,
        "attempt_log": [attempt_data(a) for a in attempts],
    }


def signing_secret_data(holder: AccountSigningSecret | AccountTestSigningSecret) -> dict[str, Any]:
    return {
        "secret": holder.secret,
        "previous_secret_expires_at": iso(holder.previous_secret_expires_at),
        "created_at": iso(holder.created_at),
        "secret_rotated_at": iso(holder.secret_rotated_at),
    }
