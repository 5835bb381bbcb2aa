from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from integration.models import Account
from mifumo.ids import ID_MAX_LENGTH, IdFactory


class Segment(models.Model):
    """A saved filter over an account's contacts; membership is evaluated when asked."""

    id = models.CharField(
        primary_key=True, max_length=ID_MAX_LENGTH, default=IdFactory("seg"), editable=False
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    criteria = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # "VIP" and "vip" would be indistinguishable in a send form.
            models.UniqueConstraint(models.F("account"), Lower("name"), name="segment_name_unique")
        ]
        indexes = [
            models.Index(fields=["account", "-created_at", "-id"], name="segment_account_recent"),
        ]

    def __str__(self) -> str:
        return self.name
