from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class Account(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField(max_length=120, unique=True)
    balance = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    currency = models.CharField(max_length=3, default="TZS")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    balance_updated_at = models.DateTimeField(default=timezone.now)
    # Per-account overrides; null means the platform default.
    sms_per_minute = models.PositiveIntegerField(null=True, blank=True)
    api_per_hour = models.PositiveIntegerField(null=True, blank=True)
    contacts_per_hour = models.PositiveIntegerField(null=True, blank=True)
    max_message_length = models.PositiveIntegerField(null=True, blank=True)
    # Send "Authorization: Bearer <sending key>" with webhooks, as the guide promises.
    webhook_send_api_key = models.BooleanField(default=True)
    # Every member must sign in to the dashboard with a second factor (TOTP).
    require_2fa = models.BooleanField(
        "require two-factor authentication",
        default=False,
        help_text="Members must set up an authenticator app and enter its code at sign-in.",
    )
    # A debit that takes the balance below this alerts the account (e-mail and the
    # account.low_balance webhook event); null: no alert.
    low_balance_threshold = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True
    )
    # The alert went out and nothing has lifted the balance back to the threshold since:
    # refunds that hover around it must not send it again (integration.services).
    low_balance_alerted = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance__gte=0), name="account_balance_not_negative"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def message_length_limit(self) -> int:
        return self.max_message_length or settings.MIFUMO_MAX_MESSAGE_LENGTH


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the user last chose this account in the dashboard: a user of several accounts
    # signs in to the one they used last.
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class Invitation(models.Model):
    """An owner's invitation to join an account, sent by e-mail as a signed link. It is
    accepted once, and never after it expires or is revoked."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(
        max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"], name="invitation_account")]

    def __str__(self) -> str:
        return f"{self.email} to {self.account_id} ({self.status})"

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class Permission(models.TextChoices):
    """Key permissions are nested: read ⊂ write ⊂ admin."""

    READ = "read", "Read"
    WRITE = "write", "Write"
    ADMIN = "admin", "Admin"


PERMISSION_LEVEL = {Permission.READ: 1, Permission.WRITE: 2, Permission.ADMIN: 3}


class ApiKey(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # "mif_live_" + the first 8 secret characters: indexed lookup without the secret.
    prefix = models.CharField(max_length=20, unique=True)
    digest = models.CharField(max_length=64)  # HMAC-SHA256 hex of the whole key
    # Fernet token, only for the webhook Authorization header; emptied when the key is
    # revoked or rotated, so no later webhook can carry it.
    encrypted_key = models.TextField(blank=True)
    permission = models.CharField(
        max_length=8, choices=Permission.choices, default=Permission.WRITE
    )
    is_test = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    # Rotation makes a new key record and revokes this one: the key it was replaced by.
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def permissions(self) -> list[str]:
        level = PERMISSION_LEVEL[Permission(self.permission)]
        return [p.value for p, lvl in PERMISSION_LEVEL.items() if lvl <= level]

    def allows(self, needed: str) -> bool:
        return PERMISSION_LEVEL[Permission(self.permission)] >= PERMISSION_LEVEL[Permission(needed)]

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class LedgerEntry(models.Model):
    """Append-only record of every balance movement; amounts are signed."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        DEBIT = "debit", "Debit"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Adjustment"

    # Looked up through ledger_account_recent; a plain account index would only cost writes.
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="ledger", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    balance_after = models.DecimalField(max_digits=14, decimal_places=2)
    reference = models.CharField(max_length=64, blank=True)
    note = models.CharField(max_length=255, blank=True)
    # Set for movements a person made (top-ups, adjustments), empty for the debits and refunds
    # of sends: indexed by ledger_created_by, which holds only the rows that have one.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["account", "-id"], name="ledger_account_recent"),
            # Exact matches only: no LIKE index beside it (db_index=True would add one).
            models.Index(fields=["reference"], name="ledger_reference"),
            # A user's movements (their deletion clears them): a send's row has no entry here.
            models.Index(
                fields=["created_by"],
                name="ledger_created_by",
                condition=models.Q(created_by__isnull=False),
            ),
        ]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} ({self.account_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("ledger entries are append-only")
        super().save(*args, **kwargs)


class ApiRequestLog(models.Model):
    """One row per API request, written in batches (see integration.usage)."""

    # Looked up by ``usage_account_time``, whose first column it is: an index of its own
    # would only cost every request's row one more index entry.
    account = models.ForeignKey(
        Account,
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    method = models.CharField(max_length=8)
    route = models.CharField(max_length=120)
    status_code = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField()
    error_code = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["account", "created_at"], name="usage_account_time")]

    def __str__(self) -> str:
        return f"{self.method} {self.route} {self.status_code}"


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an Idempotency-Key, replayed for 24 hours."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    # Test and live keys keep separate records: a key used by both is two requests.
    is_test = models.BooleanField(default=False)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    # A response that carries a secret is kept here instead, encrypted (Fernet), and
    # response_body stays empty (integration.idempotency).
    response_sealed = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "is_test", "key"], name="idempotency_unique_key_per_mode"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.response_status})"


class AuditEvent(models.Model):
    """Who did what to an account: written by the dashboard, the operators' admin and the
    API. Rows are never edited; the actor stays null for API keys and system changes."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Free text rather than choices: other apps add actions without a migration here.
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    # Done by a Mifumo operator (Django admin or a management command): the account sees
    # "Mifumo operator", never the operator's username or address.
    operator = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Recorded here, shown by the dashboard: under the dashboard's label the table, its
        # migrations, the admin's address and the permissions stay where they have been.
        app_label = "dashboard"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at", "-id"], name="audit_account_recent"),
            models.Index(fields=["account", "action", "-created_at"], name="audit_account_action"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target}".strip()
