from __future__ import annotations

from rest_framework import serializers

from inbox.models import Action
from mifumo.api.serializers import PagePaginationOut, StrictSerializer


class InboundOut(serializers.Serializer):
    inbound_id = serializers.CharField()
    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = serializers.CharField(help_text="The sender, E.164")
    to = serializers.CharField(help_text="The number or short code it was sent to")
    text = serializers.CharField()
    keyword = serializers.CharField(allow_null=True, help_text="The routing keyword (shared code)")
    action = serializers.ChoiceField(
        choices=[a.value for a in Action], allow_null=True, help_text="What the text asked for"
    )
    received_at = serializers.DateTimeField()
    carrier = serializers.CharField()
    contact_id = serializers.CharField(allow_null=True)
    in_reply_to = serializers.CharField(
        allow_null=True, help_text="The latest message to that phone from that number, 7 days"
    )


class InboundListOut(serializers.Serializer):
    inbound = InboundOut(many=True)
    pagination = PagePaginationOut()


class SimulateIn(StrictSerializer):
    locals()["from"] = serializers.CharField(max_length=32, help_text="The phone that sends it")
    to = serializers.CharField(max_length=32, help_text="One of the account's numbers")
    text = serializers.CharField(max_length=1600, allow_blank=True, trim_whitespace=False)
