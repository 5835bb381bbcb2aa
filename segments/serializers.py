from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mifumo.api.fields import iso
from mifumo.api.serializers import OffsetPaginationOut, PrebuiltFieldsSerializer, StrictSerializer
from segments.criteria import CriteriaError, criteria_parse
from segments.models import Segment


class CriteriaSchema(PrebuiltFieldsSerializer):
    tags = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Has any of these tags"
    )
    tags_all = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Has all of these tags"
    )
    is_active = serializers.BooleanField(required=False)
    opted_out = serializers.BooleanField(required=False)
    created_after = serializers.CharField(
        required=False,
        help_text="Created at or after: YYYY-MM-DD (midnight UTC) or ISO 8601 with a zone",
    )
    created_before = serializers.CharField(
        required=False,
        help_text="Created before: YYYY-MM-DD (midnight UTC) or ISO 8601 with a zone",
    )
    custom_fields = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text='Has these custom field values, e.g. {"city": "Arusha"}',
    )


@extend_schema_field(CriteriaSchema)
class CriteriaField(serializers.Field[dict[str, Any], Any, dict[str, Any], Any]):
    def to_internal_value(self, data: Any) -> dict[str, Any]:
        try:
            return criteria_parse(data)
        except CriteriaError as exc:
            raise serializers.ValidationError(exc.errors) from None

    def to_representation(self, value: Any) -> dict[str, Any]:
        return dict(value)


class SegmentIn(StrictSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, default=""
    )
    criteria = CriteriaField(
        required=False,
        default=dict,
        help_text="Filters combined with AND; an empty object matches every contact",
    )


class SegmentOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    criteria = CriteriaSchema()
    contact_count = serializers.IntegerField(help_text="Contacts matching the criteria now")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SegmentListOut(serializers.Serializer[Any]):
    segments = SegmentOut(many=True)
    pagination = OffsetPaginationOut()


def segment_data(segment: Segment, *, contact_count: int) -> dict[str, Any]:
    return {
        "id": segment.id,
        "name": segment.name,
        "description": segment.description,
        "criteria": segment.criteria,
        "contact_count": contact_count,
        "created_at": iso(segment.created_at),
        "updated_at": iso(segment.updated_at),
    }
