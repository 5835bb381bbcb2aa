from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from integration.models import ApiKey, Permission
from mifumo.api.fields import iso


class ApiKeyOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())
    mode = serializers.ChoiceField(choices=["live", "test"])
    status = serializers.ChoiceField(choices=["active", "revoked", "expired"])
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class ApiKeyListOut(serializers.Serializer):
    keys = ApiKeyOut(many=True)


class ApiKeyCreatedOut(ApiKeyOut):
    key = serializers.CharField(help_text="The raw key. Shown once; store it now.")


def api_key_data(api_key: ApiKey) -> dict[str, Any]:
    return {
        "id": api_key.pk,
        "name": api_key.name,
        "prefix": api_key.prefix,
        "permissions": api_key.permissions,
        "mode": "test" if api_key.is_test else "live",
        "status": api_key.status,
        "created_at": iso(api_key.created_at),
        "expires_at": iso(api_key.expires_at),
        "last_used_at": iso(api_key.last_used_at),
    }


class ApiKeyCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    permission = serializers.ChoiceField(choices=Permission.choices, default=Permission.WRITE)
    test = serializers.BooleanField(
        required=False, help_text="A test key; the calling key's mode when omitted"
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future")
        return value
