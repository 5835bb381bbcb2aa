"""Outgoing status notifications: endpoints, the events outbox, deliveries and their attempts.

An event is written in the same transaction as the recipient change it describes; a delivery
is one event going to one destination (a message's own ``webhook_url`` or an account
endpoint). Workers claim deliveries with a lease before sending, so two of them never send
the same delivery at once.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone

from integration import keys
from integration.models import Account, ApiKey
from mifumo.ids import ID_MAX_LENGTH, IdFactory
from sms.models import Message


class EventType(models.TextChoices):
    SENT = "message.sent", "Message sent"
    DELIVERED = "message.delivered", "Message delivered"
    FAILED = "message.failed", "Message failed"
    TEST = "message.test", "Test event"
    LOW_BALANCE = "account.low_balance", "Balance below the alert threshold"
    RECEIVED = "message.received", "Message received"
    OPTED_OUT = "contact.opted_out", "Contact opted out"
    OPTED_IN = "contact.opted_in", "Contact opted in"


# What endpoints can subscribe to; test events go only where they are asked for.
SUBSCRIBABLE_EVENTS: tuple[str, ...] = (
    EventType.SENT.value,
    EventType.DELIVERED.value,
    EventType.FAILED.value,
    EventType.LOW_BALANCE.value,
    EventType.RECEIVED.value,
    EventType.OPTED_OUT.value,
    EventType.OPTED_IN.value,
)


def _all_events() -> list[str]:
    return list(SUBSCRIBABLE_EVENTS)


class SigningSecretFields(models.Model):
    """A signing secret kept encrypted at rest, plus the previous one during a rotation's
    grace period (deliveries are then signed with both, so receivers can switch over)."""

    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def secret(self) -> str:
        return keys.decrypt(self.secret_encrypted)

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        secrets = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret_encrypted and expires and expires > (now or timezone.now()):
            secrets.append(keys.decrypt(self.previous_secret_encrypted))
        return secrets


class Endpoint(SigningSecretFields):
    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH, default=IdFactory("whk"))
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_endpoints")
    # Not a URLField: webhooks.security is the one authority on what a valid target is.
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=_all_events)
    active = models.BooleanField(default=True)
    # A test endpoint receives the events of test messages (sent with mif_test_ keys) only, a
    # live one those of live messages only.
    is_test = models.BooleanField(default=False)
    description = models.CharField(max_length=255, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["account", "created_at"], name="webhook_endpoint_account")]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"

    def subscribes_to(self, event_type: str) -> bool:
        return event_type in (self.events or [])


class _AccountSecret(SigningSecretFields):
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} of {self.pk}"


class AccountSigningSecret(_AccountSecret):
    """Signs deliveries to a live message's own ``webhook_url``, which has no endpoint (and so
    no endpoint secret) of its own. One per account, made on first use."""

    account = models.OneToOneField(
        Account, on_delete=models.CASCADE, primary_key=True, related_name="webhook_signing_secret"
    )


class AccountTestSigningSecret(_AccountSecret):
    """The same for test messages: test traffic never carries a signature that a receiver of
    live traffic would accept."""

    account = models.OneToOneField(
        Account,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="webhook_test_signing_secret",
    )


class Event(models.Model):
    # Ids are looked up whole: no pattern index beside the primary key (see the migrations),
    # and the account's and the message's indexes are the ones in Meta.
    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH, default=IdFactory("evt"))
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    type = models.CharField(max_length=32, choices=EventType.choices)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # Whose raw key goes into "Authorization: Bearer"; null for dashboard sends.
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Test traffic: the message was sent with a test key (or a test endpoint's test event).
    is_test = models.BooleanField(default=False)
    # The exact JSON sent: every attempt and every redelivery carries the same bytes, so a
    # receiver can de-duplicate and a signature never depends on re-serialisation.
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="webhook_event_recent"),
            models.Index(fields=["message"], name="webhook_event_message"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"

    @property
    def payload(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    # As the event's: indexes in Meta only. A delivery's row is written again with each
    # attempt's outcome, and every index takes a new entry then.
    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH, default=IdFactory("dlv"))
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    # Null: the message's own webhook_url.
    endpoint = models.ForeignKey(
        Endpoint,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
    )
    url = models.CharField(max_length=2000)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    redelivery = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a task for it was last put on the queue; the sweep leaves recent ones alone.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # The lease of the worker sending it right now.
    locked_until = models.DateTimeField(null=True, blank=True)
    lock_token = models.CharField(max_length=32, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_response = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
            models.Index(fields=["account", "-created_at"], name="webhook_delivery_account"),
            models.Index(fields=["event"], name="webhook_delivery_event"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.status}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempt_log", db_index=False
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    url = models.CharField(max_length=2000)
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField()
    error = models.CharField(max_length=500, blank=True)
    response_head = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "started_at", "id"]
        indexes = [models.Index(fields=["delivery"], name="webhook_attempt_delivery")]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"
