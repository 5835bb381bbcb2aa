from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from contacts.csvio import MAX_ROWS
from contacts.custom_fields import (
    MAX_KEYS,
    MAX_VALUE_LENGTH,
    CustomFieldError,
    parse_custom_fields,
)
from contacts.models import Contact
from contacts.tags import MAX_TAG_LENGTH, MAX_TAGS, TagError, normalize_tags
from mifumo.api.fields import iso
from mifumo.api.serializers import OffsetPaginationOut, PrebuiltFieldsSerializer, StrictSerializer

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
# Far beyond any real listing, but inside what every database accepts as an OFFSET.
MAX_OFFSET = 1_000_000_000


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class TagListField(serializers.Field[list[str], Any, list[str], Any]):
    default_error_messages = {"not_a_list": "Must be a list of strings"}

    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, list):
            self.fail("not_a_list")
        try:
            return normalize_tags(data)
        except TagError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value: Any) -> list[str]:
        return list(value)


@extend_schema_field(
    {"type": "object", "additionalProperties": {"type": "string", "nullable": True}}
)
class CustomFieldsField(serializers.Field[dict[str, Any], Any, dict[str, Any], Any]):
    """On a change (PATCH) the object is merged into the contact's; null removes a key."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        try:
            return parse_custom_fields(data, allow_null=bool(getattr(self.root, "partial", False)))
        except CustomFieldError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value: Any) -> dict[str, Any]:
        return dict(value)


class ContactIn(StrictSerializer):
    name = serializers.CharField(max_length=200)
    # Normalised (and rejected with INVALID_PHONE) by the service, not here.
    phone_number = serializers.CharField(
        help_text="Tanzanian mobile number in any common format; stored as E.164"
    )
    email = serializers.EmailField(
        max_length=254, required=False, allow_blank=True, allow_null=True
    )
    tags = TagListField(
        required=False,
        help_text=(
            f"Up to {MAX_TAGS} tags of 1 to {MAX_TAG_LENGTH} characters; "
            "trimmed, lower-cased and de-duplicated"
        ),
    )
    custom_fields = CustomFieldsField(
        required=False,
        help_text=(
            f"Up to {MAX_KEYS} keys (lower-case letters, digits and _, starting with a letter, "
            f"at most 32 characters) with string values of at most {MAX_VALUE_LENGTH} "
            'characters, e.g. {"city": "Arusha"}; filled into {{KEY}} placeholders'
        ),
    )
    is_active = serializers.BooleanField(default=True)

    def validate_email(self, value: str | None) -> str:
        return (value or "").strip()


class PageIn(PrebuiltFieldsSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, default=0)


class ContactSearchIn(PageIn):
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        default="",
        help_text="Case-insensitive text in the name, email or phone number",
    )
    segment_id = serializers.CharField(
        required=False, max_length=64, help_text="Only members of this segment"
    )


class ContactExportIn(PrebuiltFieldsSerializer):
    segment_id = serializers.CharField(
        required=False, max_length=64, help_text="Only members of this segment"
    )


class ContactImportIn(PrebuiltFieldsSerializer):
    on_duplicate = serializers.ChoiceField(
        choices=["skip", "update"],
        default="skip",
        help_text=(
            "What to do with a row whose phone number is already a contact: skip it, or "
            "update it with the columns the file has"
        ),
    )


class ContactImportUploadIn(ContactImportIn):
    file = serializers.FileField(
        help_text=(
            "CSV with a header row: name, phone_number, email, tags (separated by ';' or "
            f"'|'), is_active; at most {MAX_ROWS} rows. May be gzip-compressed."
        ),
    )


class ContactOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()
    phone_number = serializers.CharField()
    email = serializers.EmailField(allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())
    custom_fields = serializers.DictField(child=serializers.CharField())
    is_active = serializers.BooleanField()
    opted_out = serializers.BooleanField()
    opted_out_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ContactListOut(serializers.Serializer[Any]):
    contacts = ContactOut(many=True)
    pagination = OffsetPaginationOut()


class ImportErrorOut(serializers.Serializer[Any]):
    row = serializers.IntegerField(help_text="Row number in the file; the header is row 1")
    field = serializers.CharField()
    reason = serializers.CharField()


# "errors" is a Serializer attribute, so this one cannot be a declared class.
ImportOut = inline_serializer(
    name="ContactImportOut",
    fields={
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "skipped": serializers.IntegerField(),
        "failed": serializers.IntegerField(),
        "errors": ImportErrorOut(many=True),
        "errors_truncated": serializers.BooleanField(
            help_text="True when there were more errors than the response lists"
        ),
        "ignored_columns": serializers.ListField(
            child=serializers.CharField(), help_text="Header columns that were not used"
        ),
        "opted_out": serializers.IntegerField(
            help_text="Contacts the file's opted_out column opted out (source import)"
        ),
        "opted_in": serializers.IntegerField(
            help_text="Contacts opted back in: only those an earlier import opted out"
        ),
        "left_opted_out": serializers.IntegerField(
            help_text="Rows whose opted_out was false for a contact that opted out itself "
            "(keyword, carrier, API) or in the dashboard: it stays opted out"
        ),
    },
)


class DeletedOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    deleted = serializers.BooleanField()


def contact_data(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "phone_number": contact.phone_number,
        "email": contact.email or None,
        "tags": list(contact.tags),
        "custom_fields": dict(contact.custom_fields or {}),
        "is_active": contact.is_active,
        "opted_out": contact.opted_out,
        "opted_out_at": iso(contact.opted_out_at),
        "created_at": iso(contact.created_at),
        "updated_at": iso(contact.updated_at),
    }


def page_data(*, limit: int, offset: int, total: int) -> dict[str, int]:
    return {"limit": limit, "offset": offset, "total": total}
