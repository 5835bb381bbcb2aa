from __future__ import annotations

from typing import Any

from rest_framework import serializers

from mifumo.api.serializers import PagePaginationOut, StrictSerializer, TolerantSerializer
from mifumo.api.text import SURROGATE
from sms.personalise import parse_variables


class BalanceOut(serializers.Serializer):
    balance = serializers.FloatField()
    currency = serializers.CharField()
    last_updated = serializers.DateTimeField()


class SendIn(TolerantSerializer):
    MESSAGE_MAX_LENGTH = 10_000

    message = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=MESSAGE_MAX_LENGTH,
        help_text=(
            "SMS text (max 160 characters unless the account's limit is raised). May hold "
            "placeholders: {{name}}, {{phone}}, {{KEY}} (a contact custom field or a "
            "variable) and {{KEY|default}}; each recipient's text is rendered, measured and "
            "priced on its own. Give message or template_id."
        ),
    )
    template_id = serializers.CharField(
        required=False,
        max_length=40,
        help_text="Send this template's text (tpl_…) instead of message",
    )
    variables = serializers.JSONField(
        required=False,
        default=dict,
        help_text=(
            "Values for placeholders, the same for every recipient, used before the "
            'contact\'s fields, e.g. {"order_id": "1043"}'
        ),
    )
    recipients = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        default=list,
        help_text="Phone numbers, E.164 (+255712345678) or local (0712345678)",
    )
    sender_id = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=20,
        help_text='Approved sender ID (default "MIFUMO")',
    )
    schedule_time = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="ISO 8601 with a zone, up to 90 days ahead, e.g. 2024-01-01T10:00:00Z",
    )
    webhook_url = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=2000,
        help_text="Receives message.sent / message.delivered / message.failed events",
    )
    segment_ids = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        default=list,
        help_text="Send to the members of these contact segments too",
    )
    reply_to = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=40,
        help_text="An inbound message (inb_...) to answer: sent from the number that received "
        "it, to its sender when no recipients are given",
    )

    def validate_variables(self, value: object) -> dict[str, str]:
        try:
            return parse_variables(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs: dict) -> dict:
        if ("message" in attrs) == ("template_id" in attrs):
            raise serializers.ValidationError({"message": ["give message or template_id"]})
        return attrs


_COMMON_KEYS = frozenset({"message", "recipients"})


def send_in_common(data: object) -> dict[str, Any] | None:
    """``SendIn``'s validated data for the commonest body, a text and a list of phone strings,
    without DRF's field machinery (about 40 µs a send); None for any other body, which
    ``SendIn`` validates, so every refusal and every other field still come from it.
    tests/sms/test_send_in_common.py holds the two to the same output."""
    if type(data) is not dict or "message" not in data or not data.keys() <= _COMMON_KEYS:
        return None
    message = data["message"]
    recipients = data.get("recipients", [])
    if type(message) is not str or len(message) > SendIn.MESSAGE_MAX_LENGTH:
        return None
    if "\x00" in message or (not message.isascii() and SURROGATE.search(message)):
        return None
    if type(recipients) is not list or not all(type(phone) is str for phone in recipients):
        return None
    # In the order of SendIn's fields, with its defaults.
    return {"message": message, "variables": {}, "recipients": list(recipients), "segment_ids": []}


class SendOut(serializers.Serializer):
    message_id = serializers.CharField()
    recipients = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=["queued", "scheduled"])
    cost = serializers.FloatField()
    currency = serializers.CharField()
    segments = serializers.IntegerField()
    encoding = serializers.ChoiceField(choices=["GSM-7", "UCS-2"])
    sender_id = serializers.CharField()
    schedule_time = serializers.DateTimeField(allow_null=True)
    test = serializers.BooleanField()
    skipped = serializers.ListField(child=serializers.DictField())
    from_segments = serializers.DictField(child=serializers.IntegerField())


class RecipientOut(serializers.Serializer):
    phone = serializers.CharField()
    status = serializers.CharField()
    text = serializers.CharField(
        help_text="The text this recipient gets (rendered, if personalised)"
    )
    segments = serializers.IntegerField()
    cost = serializers.FloatField()
    delivery_time = serializers.DateTimeField(allow_null=True)
    sent_at = serializers.DateTimeField(allow_null=True)
    error_code = serializers.CharField(allow_null=True)
    error_message = serializers.CharField(allow_null=True)


class StatusOut(serializers.Serializer):
    message_id = serializers.CharField()
    status = serializers.CharField()
    delivery_time = serializers.DateTimeField(allow_null=True)
    recipients = RecipientOut(many=True)
    sender_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    schedule_time = serializers.DateTimeField(allow_null=True)
    segments = serializers.IntegerField()
    encoding = serializers.CharField()
    cost = serializers.FloatField()
    refunded = serializers.FloatField(
        help_text="Given back to the balance: recipients rejected at submit, a canceled schedule"
    )
    currency = serializers.CharField()
    recipient_count = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    pagination = PagePaginationOut()


class ReportRowOut(serializers.Serializer):
    message_id = serializers.CharField()
    phone = serializers.CharField()
    status = serializers.CharField()
    sender_id = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)
    delivery_time = serializers.DateTimeField(allow_null=True)
    error_code = serializers.CharField(allow_null=True)
    cost = serializers.FloatField()
    currency = serializers.CharField()
    created_at = serializers.DateTimeField()


class ReportsOut(serializers.Serializer):
    reports = ReportRowOut(many=True)
    pagination = PagePaginationOut()


class MessageOut(serializers.Serializer):
    message_id = serializers.CharField()
    status = serializers.CharField()
    text = serializers.CharField()
    sender_id = serializers.CharField()
    recipient_count = serializers.IntegerField()
    segments = serializers.IntegerField()
    encoding = serializers.CharField()
    cost = serializers.FloatField()
    refunded = serializers.FloatField(
        help_text="Given back to the balance: recipients rejected at submit, a canceled schedule"
    )
    currency = serializers.CharField()
    schedule_time = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    counts = serializers.DictField(child=serializers.IntegerField())


class MessagesOut(serializers.Serializer):
    messages = MessageOut(many=True)
    pagination = PagePaginationOut()


class CancelOut(serializers.Serializer):
    message_id = serializers.CharField()
    status = serializers.CharField()
    canceled = serializers.IntegerField()
    refunded = serializers.FloatField()
    currency = serializers.CharField()


class SenderIdOut(serializers.Serializer):
    sender_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "approved", "rejected"])
    purpose = serializers.CharField()
    created_at = serializers.DateTimeField(allow_null=True)
    reviewed_at = serializers.DateTimeField(allow_null=True)


class SenderIdsOut(serializers.Serializer):
    sender_ids = SenderIdOut(many=True)
    pagination = PagePaginationOut()


class SenderIdRequestIn(StrictSerializer):
    sender_id = serializers.CharField(max_length=20)
    purpose = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
