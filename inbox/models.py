"""Two-way messaging: the numbers an account receives on, the messages it receives, and the
keywords and automatic replies it answers them with."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from contacts.models import Contact
from integration.models import Account
from mifumo.ids import ID_MAX_LENGTH, IdFactory
from sms.models import Message


class Action(models.TextChoices):
    OPT_OUT = "opt_out", "Opt out"
    OPT_IN = "opt_in", "Opt in"
    HELP = "help", "Help"


class Number(models.Model):
    """A long number (E.164) or short code an account receives on. A short code shared by
    several accounts gives each its own keyword: the first word of the text."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="numbers")
    number = models.CharField(max_length=16, help_text="E.164 (+255712345678) or a short code")
    keyword = models.CharField(
        max_length=20, blank=True, help_text="Upper case; blank: every message to the number"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["number", "keyword"]
        constraints = [
            models.UniqueConstraint(fields=["number", "keyword"], name="inbox_number_keyword")
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.keyword}".strip()


class InboundMessage(models.Model):
    # Ids are looked up whole: no pattern index beside the primary key (see the migrations),
    # and those of the account, the contact and the message answered are the ones in Meta.
    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH, default=IdFactory("inb"))
    # Null: no account receives on the destination (kept for operators, never dropped).
    account = models.ForeignKey(
        Account,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="inbound",
        db_index=False,
    )
    number = models.ForeignKey(
        Number, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sender = models.CharField(max_length=32)
    destination = models.CharField(max_length=32)
    text = models.TextField(blank=True)
    keyword = models.CharField(max_length=20, blank=True)
    action = models.CharField(max_length=8, choices=Action.choices, blank=True)
    carrier = models.CharField(max_length=40)
    carrier_message_id = models.CharField(max_length=120, blank=True)
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    in_reply_to = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # Received through a test key's simulate/: listed to test keys only.
    is_test = models.BooleanField(default=False)
    # Parts that never completed are stored as they came, and say so.
    incomplete = models.BooleanField(default=False)
    read_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # A carrier that delivers the same message again stores it once.
            models.UniqueConstraint(
                fields=["carrier", "carrier_message_id"],
                condition=~models.Q(carrier_message_id=""),
                name="inbound_carrier_id_unique",
            )
        ]
        indexes = [
            models.Index(fields=["account", "-received_at", "-id"], name="inbound_account_recent"),
            models.Index(fields=["account", "sender", "-received_at"], name="inbound_conversation"),
            models.Index(fields=["contact"], name="inbound_contact"),
            models.Index(fields=["in_reply_to"], name="inbound_in_reply_to"),
        ]

    def __str__(self) -> str:
        return self.id


class InboundPart(models.Model):
    """One part of a multipart inbound message, kept until the last part arrives (or the
    parts are stored as they are after a timeout)."""

    carrier = models.CharField(max_length=40)
    sender = models.CharField(max_length=32)
    destination = models.CharField(max_length=32)
    reference = models.PositiveIntegerField()
    total = models.PositiveSmallIntegerField()
    part = models.PositiveSmallIntegerField()
    text = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["carrier", "sender", "destination", "reference", "total", "part"],
                name="inbound_part_unique",
            )
        ]
        indexes = [models.Index(fields=["received_at"], name="inbound_part_age")]

    def __str__(self) -> str:
        return f"{self.sender} ref {self.reference} {self.part}/{self.total}"


class Keyword(models.Model):
    """A word an account adds to the standard lists, with what it does."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="keywords")
    word = models.CharField(max_length=20)
    action = models.CharField(max_length=8, choices=Action.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["word"]
        constraints = [models.UniqueConstraint(fields=["account", "word"], name="keyword_unique")]

    def __str__(self) -> str:
        return f"{self.word} -> {self.action}"


class AutoReply(models.Model):
    """An account's own reply to a keyword action; without a row the default is sent."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="auto_replies")
    action = models.CharField(max_length=8, choices=Action.choices)
    text = models.CharField(max_length=480, blank=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "auto replies"
        constraints = [
            models.UniqueConstraint(fields=["account", "action"], name="auto_reply_unique")
        ]

    def __str__(self) -> str:
        return f"{self.action}: {self.text}"
