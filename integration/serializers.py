from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integration.models import PERMISSION_LEVEL, ApiKey, Permission
from mifumo.api.fields import iso
from mifumo.api.serializers import PagePaginationOut, StrictSerializer


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
    pagination = PagePaginationOut()


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


_LEVEL = {"type": "string", "enum": list(Permission.values)}


@extend_schema_field(
    {"oneOf": [_LEVEL, {"type": "array", "items": _LEVEL, "minItems": 1}], "default": "write"}
)
class PermissionsField(serializers.Field):
    """``permissions`` as the key's answers show it: a list such as ``["read", "write"]``, or
    one level (``"read"``). Levels nest (read ⊂ write ⊂ admin), so the highest one named is
    the key's."""

    default_error_messages = {
        "invalid": 'Expected "read", "write" or "admin", or a list of them',
        "empty": "Name at least one of read, write, admin",
    }

    def to_internal_value(self, data: Any) -> str:
        named = [data] if isinstance(data, str) else data
        if not isinstance(named, list) or not all(isinstance(p, str) for p in named):
            self.fail("invalid")
        if not named:
            self.fail("empty")
        if any(p not in Permission.values for p in named):
            self.fail("invalid")
        return max(named, key=lambda p: PERMISSION_LEVEL[Permission(p)])

    def to_representation(self, value: Any) -> Any:
        return value


class ApiKeyCreateIn(StrictSerializer):
    name = serializers.CharField(max_length=100)
    permissions = PermissionsField(default=Permission.WRITE)
    test = serializers.BooleanField(
        required=False, help_text="A test key; the calling key's mode when omitted"
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future")
        return value
