from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from inbox.models import AutoReply, InboundMessage, Keyword, Number
from inbox.services import NumberError, normalise_number


class NumberForm(forms.ModelForm):
    class Meta:
        model = Number
        fields = ("account", "number", "keyword")

    def clean_number(self) -> str:
        try:
            return normalise_number(self.cleaned_data["number"])
        except NumberError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_keyword(self) -> str:
        return str(self.cleaned_data.get("keyword") or "").strip().upper()


@admin.register(Number)
class NumberAdmin(admin.ModelAdmin):
    form = NumberForm
    list_display = ("number", "keyword", "account", "created_at")
    search_fields = ("number", "keyword", "account__name")
    list_select_related = ("account",)


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    """Operators see every inbound message, including those no account receives."""

    list_display = ("id", "received_at", "sender", "destination", "account", "action", "carrier")
    list_filter = ("carrier", "action", ("account", admin.EmptyFieldListFilter))
    search_fields = ("id", "sender", "destination", "carrier_message_id")
    list_select_related = ("account",)
    readonly_fields = [f.name for f in InboundMessage._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(Keyword)
class KeywordAdmin(admin.ModelAdmin):
    list_display = ("word", "action", "account")
    search_fields = ("word", "account__name")


@admin.register(AutoReply)
class AutoReplyAdmin(admin.ModelAdmin):
    list_display = ("account", "action", "enabled", "text")
