from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from integration.models import Account


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
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at", "-id"], name="audit_account_recent"),
            models.Index(fields=["account", "action", "-created_at"], name="audit_account_action"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target}".strip()
