from __future__ import annotations

from typing import Any

from rest_framework import serializers

from message_templates.models import MessageTemplate
from mifumo.api.fields import iso
from mifumo.api.serializers import OffsetPaginationOut, StrictSerializer
from sms.personalise import TemplateError, parse_template, placeholder_keys

MAX_TEXT_LENGTH = 10_000


class TemplateIn(StrictSerializer):
    name = serializers.CharField(max_length=100)
    text = serializers.CharField(
        max_length=MAX_TEXT_LENGTH,
        trim_whitespace=False,
        help_text=(
            "The message text, with placeholders if wanted: {{name}}, {{phone}}, {{KEY}} "
            "and {{KEY|default}}"
        ),
    )

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("must not be blank")
        return value.strip()

    def validate_text(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("must not be blank")
        try:
            parse_template(value)
        except TemplateError as exc:
            raise serializers.ValidationError(exc.problems) from None
        return value


class TemplateOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()
    text = serializers.CharField()
    placeholders = serializers.ListField(
        child=serializers.CharField(), help_text="The keys the text's placeholders name"
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class TemplateListOut(serializers.Serializer[Any]):
    templates = TemplateOut(many=True)
    pagination = OffsetPaginationOut()


def template_data(template: MessageTemplate) -> dict[str, Any]:
    return {
        "id": template.id,
        "name": template.name,
        "text": template.text,
        "placeholders": placeholder_keys(template.text),
        "created_at": iso(template.created_at),
        "updated_at": iso(template.updated_at),
    }
