"""Serializers shared by every app's API documentation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


class PagePaginationOut(serializers.Serializer):
    page = serializers.IntegerField()
    per_page = serializers.IntegerField()
    total = serializers.IntegerField()
    pages = serializers.IntegerField()


class OffsetPaginationOut(serializers.Serializer):
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    total = serializers.IntegerField()


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (400 VALIDATION_ERROR naming each), so that a
    misspelt option is an error rather than silently a default."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            if unknown:
                known = ", ".join(sorted(self.fields))
                raise serializers.ValidationError(
                    {name: [f"Unknown field; the fields are: {known}"] for name in unknown}
                )
        return super().to_internal_value(data)
