from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from integration.models import Account, ApiKey
from mifumo.ids import ID_MAX_LENGTH, IdFactory


class SenderId(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sender_ids")
    value = models.CharField(max_length=15)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    purpose = models.CharField(max_length=255, blank=True)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["value"]
        constraints = [
            models.UniqueConstraint(fields=["account", "value"], name="sender_id_unique")
        ]

    def __str__(self) -> str:
        return f"{self.value} ({self.status})"


class PriceRule(models.Model):
    """Price per SMS part for a destination: a country calling code, optionally narrowed to
    a number prefix (a network). The longest matching prefix wins."""

    country_code = models.CharField(max_length=4, help_text="Calling code without +, e.g. 255")
    prefix = models.CharField(
        max_length=15,
        blank=True,
        help_text="Optional E.164 digits without +, e.g. 25574 for one network",
    )
    price_per_segment = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="TZS")
    description = models.CharField(max_length=120, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["country_code", "prefix"]
        constraints = [
            models.UniqueConstraint(fields=["country_code", "prefix"], name="price_rule_unique")
        ]

    def __str__(self) -> str:
        return f"+{self.prefix or self.country_code}: {self.price_per_segment} {self.currency}"

    @property
    def match(self) -> str:
        return self.prefix or self.country_code


class Message(models.Model):
    class Source(models.TextChoices):
        API = "api", "API"
        DASHBOARD = "dashboard", "Dashboard"
        AUTO_REPLY = "auto_reply", "Automatic reply"

    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH, default=IdFactory("msg"))
    # db_index=False: message_account_recent (below) serves the account's lookups, and every
    # index is one more write per send.
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    # With placeholders, the template; each recipient row holds its own rendered text.
    text = models.TextField()
    personalised = models.BooleanField(default=False)
    sender_id = models.CharField(max_length=15)
    encoding = models.CharField(max_length=8)
    # The largest of the recipients' part counts.
    segments = models.PositiveSmallIntegerField()
    recipient_count = models.PositiveIntegerField()
    cost = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, default="TZS")
    is_test = models.BooleanField(default=False)
    schedule_time = models.DateTimeField(null=True, blank=True)
    webhook_url = models.URLField(max_length=2000, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at", "-id"], name="message_account_recent"),
        ]

    def __str__(self) -> str:
        return self.id


class Recipient(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        QUEUED = "queued", "Queued"
        SUBMITTING = "submitting", "Submitting"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    # Served by the composite indexes below (message first, account first).
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="recipients", db_index=False
    )
    # Copies of the message's account and creation time, so that reports filter and sort
    # one table with one index.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    created_at = models.DateTimeField()
    phone = models.CharField(max_length=16)
    status = models.CharField(max_length=10, choices=Status.choices)
    # The recipient's rendered text when the message is personalised; empty: the message's.
    text = models.TextField(blank=True, default="")
    # The recipient's part count (null on rows older than per-recipient counts: the message's).
    segments = models.PositiveSmallIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    carrier = models.CharField(max_length=40, blank=True)
    carrier_message_id = models.CharField(max_length=80, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Set when every carrier of the route refused it for now: not claimed again before then.
    not_before = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["message", "status"], name="recipient_message_status"),
            models.Index(fields=["account", "-created_at", "-id"], name="recipient_account_recent"),
            models.Index(
                fields=["account", "status", "-created_at", "-id"], name="recipient_account_status"
            ),
            models.Index(fields=["status", "updated_at"], name="recipient_status_age"),
            # The dispatcher's claim: queued recipients of any message, oldest and newest first.
            models.Index(
                fields=["id"], name="recipient_queued", condition=models.Q(status="queued")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.phone} ({self.status})"

    FINAL = frozenset({Status.DELIVERED, Status.FAILED, Status.CANCELED})

    def text_sent(self, message: Message) -> str:
        return self.text or message.text

    def segments_sent(self, message: Message) -> int:
        return self.segments or message.segments


class RecipientTally(models.Model):
    """How many recipient rows an account has, kept by PostgreSQL: triggers on the recipients'
    table add each statement's inserted rows and take off its deleted ones (migration 0009),
    whatever wrote them (the send's statement, COPY, the ORM, a cascade). The delivery reports'
    total without filters is their sum, exact and read in one index lookup however many rows
    the account has, where counting them took a scan of all of them.

    Each account has a row per ``shard`` (the writing connection's process id modulo
    ``SHARDS``, the migration's modulo), so sends of one account on different connections do
    not queue for one row: test sends take no lock on the balance row, and would otherwise
    have queued here. A recipient is never moved to another account; the tally would not
    follow it."""

    SHARDS = 8

    # Looked up by the unique constraint's index, whose first column it is.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    shard = models.SmallIntegerField()
    total = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "shard"], name="recipient_tally_shard")
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.shard}: {self.total}"


class CarrierMessage(models.Model):
    """One id a carrier gave us for (a part of) a recipient's message; receipts match here."""

    carrier = models.CharField(max_length=40)
    carrier_message_id = models.CharField(max_length=80)
    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="parts")
    part = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["carrier", "carrier_message_id"], name="carrier_message_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.carrier}:{self.carrier_message_id}"


class UnmatchedReceipt(models.Model):
    """A receipt for an id no part holds yet (it overtook the submit's result, or the batch
    was still being recorded). Kept until its id is recorded, when it is applied, or for the
    receipt timeout (``MIFUMO_RECEIPT_TIMEOUT_SECONDS``), after which it is dropped."""

    carrier = models.CharField(max_length=40)
    carrier_message_id = models.CharField(max_length=80)
    receipt = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["carrier", "carrier_message_id"], name="unmatched_receipt_id"),
            models.Index(fields=["received_at"], name="unmatched_receipt_age"),
        ]

    def __str__(self) -> str:
        return f"{self.carrier}:{self.carrier_message_id}"


def validate_route_prefix(value: str) -> None:
    if not value.isdigit():
        raise ValidationError("Use the E.164 digits without +, e.g. 255 or 25574.")


class CarrierRoute(models.Model):
    """Which carriers take numbers that start with ``prefix``, in failover order. The longest
    active matching prefix wins; numbers no route covers go to ``settings.MIFUMO_CARRIER``."""

    prefix = models.CharField(
        max_length=15,
        unique=True,
        validators=[validate_route_prefix],
        help_text="E.164 digits without +: 255 for Tanzania, 25574 for one network",
    )
    carriers = models.JSONField(
        default=list,
        help_text="Carrier names from MIFUMO_CARRIERS, tried in this order",
    )
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prefix"]

    def __str__(self) -> str:
        return f"+{self.prefix} -> {', '.join(self.carrier_names)}"

    @property
    def carrier_names(self) -> list[str]:
        return [str(name) for name in self.carriers] if isinstance(self.carriers, list) else []

    def clean(self) -> None:
        from django.conf import settings

        names = self.carriers
        if not isinstance(names, list) or not names:
            raise ValidationError({"carriers": "List at least one carrier."})
        if not all(isinstance(name, str) and name for name in names):
            raise ValidationError({"carriers": "Carrier names are non-empty strings."})
        if len(set(names)) != len(names):
            raise ValidationError({"carriers": "A carrier appears twice."})
        unknown = [name for name in names if name not in settings.MIFUMO_CARRIERS]
        if unknown:
            raise ValidationError({"carriers": f"Not in MIFUMO_CARRIERS: {', '.join(unknown)}."})


class SubmitAttempt(models.Model):
    """One batch of one message offered to one carrier, and what the carrier said."""

    # Its index is in Meta: no pattern index on the message's id (see the migrations).
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="submit_attempts", db_index=False
    )
    carrier = models.CharField(max_length=40)
    recipient_count = models.PositiveIntegerField()
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # The batch-wide error (carrier unreachable, ...) or the commonest rejection code.
    error_code = models.CharField(max_length=40, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["carrier", "created_at"], name="submit_attempt_carrier"),
            models.Index(fields=["message"], name="submit_attempt_message"),
        ]

    def __str__(self) -> str:
        return f"{self.carrier}: {self.accepted}/{self.recipient_count}"


class Handoff(models.Model):
    """A claimed recipient waiting for a carrier that submits from its own process (an SMPP
    bind held by ``run_smpp``). The recipient stays ``submitting`` meanwhile; the process
    takes its handoffs in recipient order and deletes them as it does."""

    recipient = models.OneToOneField(
        Recipient, primary_key=True, on_delete=models.CASCADE, related_name="handoff"
    )
    carrier = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["carrier", "recipient"], name="handoff_carrier_order")]

    def __str__(self) -> str:
        return f"{self.carrier}: {self.recipient_id}"
