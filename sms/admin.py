"""The operators' admin for sender IDs (the approval queue), prices and sent messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from integration.admin import ReadOnlyAdminMixin, action_form_page
from integration.audit import operator_audit
from sms.models import Message, PriceRule, Recipient, SenderId
from sms.phones import InvalidPhone, normalize_phone
from sms.sender_ids import MAX_NOTE_LENGTH, sender_id_review

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin


def _phone_terms(search_term: str) -> str:
    """Phone numbers typed the local way (0712 345 678) searched as stored (E.164)."""
    try:
        return normalize_phone(search_term)
    except InvalidPhone:
        return search_term


@admin.register(SenderId)
class SenderIdAdmin(ModelAdmin):
    list_display = ("value", "account", "status", "purpose", "created_at", "reviewed_at", "note")
    list_filter = ("status",)
    search_fields = ("value", "account__name")
    list_select_related = ("account",)
    ordering = ("status", "created_at")
    # Status changes go through the review actions so they are dated and logged.
    readonly_fields = ("status", "created_at", "reviewed_at")
    fields = ("account", "value", "purpose", "status", "note", "created_at", "reviewed_at")
    raw_id_fields = ("account",)
    actions = ["approve", "reject"]

    def _review(
        self, request: HttpRequest, queryset: QuerySet[SenderId], approve: bool
    ) -> TemplateResponse | None:
        form = ReviewForm(request.POST if "apply" in request.POST else None, approve=approve)
        if not form.is_valid():
            verdict = "Approve" if approve else "Reject"
            return action_form_page(
                self,
                request,
                queryset,
                form=form,
                action="approve" if approve else "reject",
                title=f"{verdict} sender IDs",
                intro=f"{verdict} these sender IDs. The account sees the note beside each one.",
                items=[(s.value, s.account.name) for s in queryset.select_related("account")],
                submit_label=verdict,
            )
        note = form.cleaned_data["note"]
        reviewed = 0
        for sender in queryset.select_related("account"):
            sender_id_review(
                account=sender.account,
                value=sender.value,
                approve=approve,
                note=note,
                audit=operator_audit(request),
            )
            reviewed += 1
        verdict = "approved" if approve else "rejected"
        self.message_user(request, f"{reviewed} sender ID(s) {verdict}.", messages.SUCCESS)
        return None

    @admin.action(description="Approve the selected sender IDs", permissions=["change"])
    def approve(
        self, request: HttpRequest, queryset: QuerySet[SenderId]
    ) -> TemplateResponse | None:
        return self._review(request, queryset, approve=True)

    @admin.action(description="Reject the selected sender IDs", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[SenderId]) -> TemplateResponse | None:
        return self._review(request, queryset, approve=False)


class ReviewForm(forms.Form):
    note = forms.CharField(
        max_length=MAX_NOTE_LENGTH,
        required=False,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Why; shown to the account beside the sender ID.",
    )

    def __init__(self, *args: Any, approve: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not approve:
            self.fields["note"].required = True
            self.fields["note"].label = "Reason for rejecting"


@admin.register(PriceRule)
class PriceRuleAdmin(ModelAdmin):
    list_display = ("match", "country_code", "prefix", "price_per_segment", "currency", "active")
    list_editable = ("price_per_segment", "active")
    list_filter = ("active", "country_code")
    search_fields = ("country_code", "prefix", "description")

    @admin.display(description="matches")
    def match(self, obj: PriceRule) -> str:
        return f"+{obj.match}"


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = (
        "id",
        "account",
        "sender_id",
        "recipient_count",
        "cost",
        "source",
        "is_test",
        "created_at",
    )
    list_filter = ("source", "is_test")
    search_fields = ("=id", "=recipients__phone", "account__name")
    list_select_related = ("account",)
    show_full_result_count = False
    fields = (
        "id",
        "account",
        "api_key",
        "source",
        "text",
        "sender_id",
        "encoding",
        "segments",
        "recipient_count",
        "recipients_link",
        "cost",
        "currency",
        "is_test",
        "schedule_time",
        "webhook_url",
        "canceled_at",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="recipients")
    def recipients_link(self, obj: Message) -> str:
        url = reverse("admin:sms_recipient_changelist")
        return format_html('<a href="{}?message__exact={}">Show recipients</a>', url, obj.pk)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        return super().get_search_results(request, queryset, _phone_terms(search_term))


@admin.register(Recipient)
class RecipientAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = (
        "id",
        "message_id",
        "phone",
        "status",
        "cost",
        "carrier",
        "error_code",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "carrier")
    search_fields = ("=phone", "=message__id", "=carrier_message_id")
    show_full_result_count = False
    fields = (
        "message",
        "account",
        "phone",
        "status",
        "cost",
        "carrier",
        "carrier_message_id",
        "error_code",
        "error_message",
        "attempts",
        "created_at",
        "sent_at",
        "delivered_at",
        "updated_at",
    )
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Recipient], search_term: str
    ) -> tuple[QuerySet[Recipient], bool]:
        return super().get_search_results(request, queryset, _phone_terms(search_term))
