from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
    TabularInline = admin.TabularInline[Any, Any]
else:
    ModelAdmin = admin.ModelAdmin
    TabularInline = admin.TabularInline

# Secrets are encrypted at rest and never shown here; the API shows them to admin keys.
SECRET_FIELDS = (
    "secret_encrypted",
    "previous_secret_encrypted",
)


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Endpoint)
class EndpointAdmin(ModelAdmin):
    list_display = ("id", "account", "url", "active", "disabled_reason", "created_at")
    list_filter = ("active",)
    search_fields = ("id", "url", "account__name")
    exclude = SECRET_FIELDS
    readonly_fields = (
        "id",
        "account",
        "url",
        "previous_secret_expires_at",
        "secret_rotated_at",
        "disabled_at",
        "created_at",
        "updated_at",
    )


class DeliveryInline(ReadOnlyMixin, TabularInline):
    model = Delivery
    fields = ("id", "endpoint", "url", "status", "attempts", "next_attempt_at", "last_error")
    readonly_fields = fields
    extra = 0
    show_change_link = True


@admin.register(Event)
class EventAdmin(ReadOnlyMixin, ModelAdmin):
    list_display = ("id", "type", "account", "message", "created_at")
    list_filter = ("type",)
    search_fields = ("id", "message__id")
    readonly_fields = ("id", "type", "account", "message", "api_key", "body", "created_at")
    inlines = [DeliveryInline]


class AttemptInline(ReadOnlyMixin, TabularInline):
    model = DeliveryAttempt
    fields = (
        "number",
        "started_at",
        "url",
        "succeeded",
        "status_code",
        "latency_ms",
        "error",
        "response_head",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Delivery)
class DeliveryAdmin(ModelAdmin):
    list_display = (
        "id",
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "created_at",
    )
    list_filter = ("status", "redelivery")
    search_fields = ("id", "event__id", "event__message__id", "url")
    raw_id_fields = ("event", "endpoint", "account")
    # Scheduling fields stay editable so an operator can push a delivery to be due now.
    readonly_fields = (
        "id",
        "event",
        "account",
        "endpoint",
        "url",
        "redelivery",
        "attempts",
        "enqueued_at",
        "locked_until",
        "lock_token",
        "last_attempt_at",
        "last_status_code",
        "last_latency_ms",
        "last_error",
        "last_response",
        "created_at",
        "completed_at",
    )
    inlines = [AttemptInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
