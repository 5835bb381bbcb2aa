from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

from contacts.fields import TagsField
from integration.models import Account
from mifumo.ids import ID_MAX_LENGTH, IdFactory


class Contact(models.Model):
    id = models.CharField(
        primary_key=True, max_length=ID_MAX_LENGTH, default=IdFactory("con"), editable=False
    )
    # Looked up through the indexes in Meta that start with it (no index of its own), and the
    # id whole (no pattern index beside the primary key: see the migrations).
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="contacts", db_index=False
    )
    name = models.CharField(max_length=200)
    phone_number = models.CharField(max_length=16, help_text="E.164, e.g. +255712345678")
    email = models.EmailField(max_length=254, blank=True)
    tags = TagsField(default=list, blank=True, help_text='Lower-case tags, e.g. ["vip"]')
    custom_fields = models.JSONField(
        default=dict, blank=True, help_text='String values by key, e.g. {"city": "Arusha"}'
    )
    is_active = models.BooleanField(default=True)
    opted_out = models.BooleanField(default=False)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "phone_number"], name="contact_phone_unique")
        ]
        indexes = [
            models.Index(fields=["account", "-created_at", "-id"], name="contact_account_recent"),
            # The send path asks which of many numbers opted out; only those rows matter.
            models.Index(
                fields=["account", "phone_number"],
                condition=models.Q(opted_out=True),
                name="contact_opted_out",
            ),
            # Segment criteria on custom fields are containment (@>), which this serves.
            GinIndex(
                fields=["custom_fields"],
                opclasses=["jsonb_path_ops"],
                name="contact_custom_fields_gin",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.phone_number})"


class OptOutSource(models.TextChoices):
    KEYWORD = "keyword", "Keyword"
    API = "api", "API"
    DASHBOARD = "dashboard", "Dashboard"
    IMPORT = "import", "Import"
    CARRIER = "carrier", "Carrier"


class OptOutChange(models.Model):
    """One opt-out or opt-in of a contact: when and how. The contact's flag is the current
    state; these rows are its history."""

    # Their indexes are in Meta: no pattern index on the contact's id, none on the account
    # alone (opt_out_change_recent starts with it).
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="opt_out_history", db_index=False
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    opted_out = models.BooleanField()
    source = models.CharField(max_length=10, choices=OptOutSource.choices)
    # The inbound message (inb_...) that asked for it, when a keyword did.
    inbound_id = models.CharField(max_length=ID_MAX_LENGTH, blank=True)
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="opt_out_change_recent"),
            models.Index(fields=["contact"], name="opt_out_change_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} {'out' if self.opted_out else 'in'} ({self.source})"
