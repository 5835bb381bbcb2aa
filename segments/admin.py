from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from segments.criteria import CriteriaError, criteria_parse
from segments.models import Segment
from segments.selectors import segment_contact_count


class SegmentAdminForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ("account", "name", "description", "criteria")

    def clean_criteria(self) -> dict[str, Any]:
        try:
            return criteria_parse(self.cleaned_data.get("criteria"))
        except CriteriaError as exc:
            raise forms.ValidationError(
                [f"{key}: {'; '.join(messages)}" for key, messages in exc.errors.items()]
            ) from None


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentAdminForm
    list_display = ("name", "account", "created_at", "updated_at")
    list_filter = ("account", "created_at")
    search_fields = ("name", "description", "=id", "account__name")
    list_select_related = ("account",)
    readonly_fields = ("id", "contact_count", "created_at", "updated_at")
    ordering = ("-created_at", "-id")

    @admin.display(description="Contacts now")
    def contact_count(self, obj: Segment) -> int | str:
        return segment_contact_count(segment=obj) if obj.pk else "-"
