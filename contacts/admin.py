from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from contacts.models import Contact, OptOutSource
from contacts.services import contact_set_opted_out
from contacts.tags import TagError, join_tags, split_tags
from sms.phones import InvalidPhone, normalize_phone


class ContactAdminForm(forms.ModelForm):
    # Tags are edited as "vip; customer", as in the CSV, rather than as raw JSON.
    tags = forms.CharField(required=False, help_text="Separated by ';' or '|'")

    class Meta:
        model = Contact
        fields = ("account", "name", "phone_number", "email", "tags", "is_active", "opted_out")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["tags"] = join_tags(self.instance.tags)

    def clean_phone_number(self) -> str:
        try:
            return normalize_phone(self.cleaned_data["phone_number"])
        except InvalidPhone as exc:
            raise forms.ValidationError(f"'{exc.raw}' {exc.reason}") from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.instance.pk and "phone_number" in self.changed_data:
            # The opt-out is the phone's (as through the API): moved with the contact, the
            # phone that asked would be messaged again and the new one silenced.
            stored = Contact.objects.filter(pk=self.instance.pk, opted_out=True).exists()
            if stored:
                self.add_error(
                    "phone_number",
                    "This contact's phone opted out: its number cannot change. Opt it back in "
                    "first if the phone asked to, or add the new number as a contact of its own.",
                )
        return self.cleaned_data

    def clean_tags(self) -> list[str]:
        try:
            return split_tags(self.cleaned_data.get("tags") or "")
        except TagError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactAdminForm
    list_display = (
        "name",
        "phone_number",
        "email",
        "account",
        "is_active",
        "opted_out",
        "created_at",
    )
    list_filter = ("is_active", "opted_out", "account", "created_at")
    search_fields = ("name", "phone_number", "email", "=id", "account__name")
    list_select_related = ("account",)
    readonly_fields = ("id", "opted_out_at", "created_at", "updated_at")
    ordering = ("-created_at", "-id")
    # Counting every row of a large table on each page load is not worth it.
    show_full_result_count = False

    def has_delete_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        # A contact whose phone opted out is what keeps messages from reaching that phone
        # (the bulk action, too, refuses a selection that holds one).
        if obj is not None and obj.opted_out:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Contact, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Only what the form changed: a whole row written back would undo an opt-out (or
        # opt-in) the phone made while the page was open.
        obj.updated_at = timezone.now()
        fields = [name for name in form.changed_data if name != "opted_out"]
        obj.save(update_fields=[*fields, "updated_at"])
        if "opted_out" in form.changed_data:
            current = Contact.objects.get(pk=obj.pk)
            contact_set_opted_out(
                contact=current,
                opted_out=obj.opted_out,
                source=OptOutSource.DASHBOARD,
                detail=f"operator {request.user}",
            )
            obj.opted_out_at = current.opted_out_at
