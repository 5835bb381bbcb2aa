from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from integration.models import Account
from mifumo.ids import ID_MAX_LENGTH, IdFactory


class MessageTemplate(models.Model):
    """A saved message text, usually with placeholders, sent by ``template_id``."""

    id = models.CharField(
        primary_key=True, max_length=ID_MAX_LENGTH, default=IdFactory("tpl"), editable=False
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=100)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                models.F("account"), Lower("name"), name="message_template_name_unique"
            )
        ]
        indexes = [
            models.Index(fields=["account", "-created_at", "-id"], name="message_template_recent"),
        ]

    def __str__(self) -> str:
        return self.name
