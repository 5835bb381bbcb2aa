"""The operators' admin for accounts, keys, money and the usage log.

Balances change only through the ledger services (top-up and adjustment actions), never by
editing a number; key secrets are never shown, not even their digests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin as OtpTOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from integration import two_factor
from integration.audit import Action, audit_record, audit_user_record, operator_audit
from integration.members import invitations_revoke_sent
from integration.models import (
    Account,
    ApiKey,
    ApiRequestLog,
    Invitation,
    LedgerEntry,
    Membership,
)
from integration.services import (
    account_adjust,
    account_set_status,
    account_top_up,
    api_key_revoke,
    audit_status_changed,
)
from mifumo.errors import DomainError
from mifumo.once import first_use, new_token

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
    TabularInline = admin.TabularInline[Any, Any]
else:
    ModelAdmin = admin.ModelAdmin
    TabularInline = admin.TabularInline

LIMIT_FIELDS = ("sms_per_minute", "api_per_hour", "contacts_per_hour", "max_message_length")
MAX_AMOUNT = Decimal("999999999999.99")


class ReadOnlyAdminMixin:
    """Records that are history, not settings: viewable, never added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def action_form_page(
    model_admin: ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    form: forms.Form,
    action: str,
    title: str,
    intro: str,
    items: list[tuple[str, str]],
    submit_label: str,
) -> TemplateResponse:
    """The page an admin action asks its questions on, posted back to the same action with
    the selection kept; shown again with the errors until the answers are valid."""
    return TemplateResponse(
        request,
        "dashboard/admin/action_form.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "opts": model_admin.model._meta,
            "intro": intro,
            "items": items,
            "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "submit_label": submit_label,
        },
    )


class AmountForm(forms.Form):
    # A text box, not type=number: the browser would refuse 10.005 without a word and send
    # "abc" as nothing; the server says exactly what is wrong and keeps what was typed.
    amount = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        max_value=MAX_AMOUNT,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={
            "invalid": "Enter an amount such as 5000 or 12.50.",
            "max_decimal_places": "Use at most two decimal places (cents), e.g. 10.01.",
        },
    )
    note = forms.CharField(max_length=255, required=False)
    reference = forms.CharField(
        max_length=64, required=False, help_text="e.g. the payment's receipt number"
    )
    # One page, one movement: a double click or a resubmitted page must not move it twice.
    once = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, adjustment: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adjustment = adjustment
        self.fields["once"].initial = new_token()
        amount = self.fields["amount"]
        if adjustment:
            amount.help_text = "Positive adds, negative removes; the balance never goes below 0."
            self.fields["note"].required = True
            self.fields["note"].help_text = "Why: it is kept in the ledger and the activity log."
            del self.fields["reference"]
        else:
            amount.help_text = "Added to each selected account's balance."

    def clean_amount(self) -> Decimal:
        value: Decimal = self.cleaned_data["amount"]
        if value == 0:
            raise forms.ValidationError("The amount must not be zero.")
        if value < 0 and not self.adjustment:
            raise forms.ValidationError("A top-up is positive; use an adjustment to remove credit.")
        return value


def audit_memberships(
    request: HttpRequest, changes: Iterable[tuple[Membership, Mapping[str, Any]]]
) -> None:
    """An operator's changes to who belongs to an account, each in its activity log; a
    member who is no longer an owner loses the invitations they sent, as in the
    dashboard."""
    audit = operator_audit(request)
    for membership, details in changes:
        audit.record(
            account=membership.account_id,
            action=Action.MEMBERSHIP_CHANGED,
            target=membership.user.get_username(),
            details=details,
        )
        if details.get("removed") or membership.role != Membership.Role.OWNER:
            invitations_revoke_sent(membership=membership, audit=audit)


class MembershipInline(TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user",)


class ApiKeyInline(ReadOnlyAdminMixin, TabularInline):
    model = ApiKey
    extra = 0
    fields = ("name", "prefix", "permission", "is_test", "key_status", "last_used_at", "created_at")
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="status")
    def key_status(self, obj: ApiKey) -> str:
        return obj.status


@admin.register(Account)
class AccountAdmin(ModelAdmin):
    list_display = (
        "name",
        "balance",
        "currency",
        "status",
        *LIMIT_FIELDS,
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("name", "=id")
    fieldsets = (
        (None, {"fields": ("name", "status", "balance", "currency", "balance_updated_at")}),
        (
            "Limits (empty: the platform default)",
            {"fields": LIMIT_FIELDS},
        ),
        ("Webhooks", {"fields": ("webhook_send_api_key",)}),
        ("Security", {"fields": ("require_2fa",)}),
        ("Times", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("balance", "currency", "balance_updated_at", "created_at", "updated_at")
    inlines = [MembershipInline, ApiKeyInline]
    actions = ["top_up", "adjust_balance", "suspend", "activate"]

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Only what the form changed: a whole row written back would restore the balance as
        # it was read, over a debit, refund or top-up committed meanwhile.
        obj.save(update_fields=[*form.changed_data, "updated_at"])
        changed = set(form.changed_data)
        limits = {f: getattr(obj, f) for f in LIMIT_FIELDS if f in changed}
        if limits:
            audit_record(
                account=obj,
                actor=request.user,
                action=Action.ACCOUNT_LIMITS_CHANGED,
                target=obj.name,
                details=limits,
                request=request,
                operator=True,
            )
        if "status" in changed:
            audit_status_changed(account=obj, audit=operator_audit(request))
        if "require_2fa" in changed:
            audit_record(
                account=obj,
                actor=request.user,
                action=Action.ACCOUNT_TWO_FACTOR_CHANGED,
                target=obj.name,
                details={"required": obj.require_2fa},
                request=request,
                operator=True,
            )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is not Membership:
            return
        changes: list[tuple[Membership, Mapping[str, Any]]]
        changes = [(m, {"role": m.role}) for m in formset.new_objects]
        changes += [(m, {"role": m.role}) for m, _fields in formset.changed_objects]
        changes += [(m, {"removed": True}) for m in formset.deleted_objects]
        audit_memberships(request, changes)

    def _amount_action(
        self, request: HttpRequest, queryset: QuerySet[Account], *, adjustment: bool
    ) -> HttpResponse | None:
        action = "adjust_balance" if adjustment else "top_up"
        form = AmountForm(request.POST if "apply" in request.POST else None, adjustment=adjustment)
        if form.is_valid():
            if first_use(f"admin:{action}:{request.user.pk}:{form.cleaned_data['once']}"):
                self._apply_amount(request, queryset, form)
            else:
                self.message_user(
                    request,
                    "That form was already applied once: nothing moved again.",
                    messages.WARNING,
                )
            return None
        verb = "Adjust the balance of" if adjustment else "Top up"
        return action_form_page(
            self,
            request,
            queryset,
            form=form,
            action=action,
            title="Adjust balance" if adjustment else "Top up",
            intro=f"{verb} these accounts. Each change is written to the ledger and the "
            "account's activity log.",
            items=[(a.name, f"balance {a.balance} {a.currency}") for a in queryset],
            submit_label="Adjust balance" if adjustment else "Top up",
        )

    def _apply_amount(
        self, request: HttpRequest, queryset: QuerySet[Account], form: AmountForm
    ) -> None:
        amount: Decimal = form.cleaned_data["amount"]
        note: str = form.cleaned_data.get("note") or ""
        reference: str = form.cleaned_data.get("reference") or ""
        for account in queryset:
            try:
                if form.adjustment:
                    entry = account_adjust(
                        account=account,
                        amount=amount,
                        note=note,
                        created_by=request.user,  # type: ignore[arg-type]
                        audit=operator_audit(request),
                    )
                else:
                    entry = account_top_up(
                        account=account,
                        amount=amount,
                        reference=reference,
                        note=note or "admin top-up",
                        created_by=request.user,  # type: ignore[arg-type]
                        audit=operator_audit(request),
                    )
            except DomainError as exc:
                self.message_user(request, f"{account.name}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{account.name}: {entry.amount:+.2f} {account.currency}, "
                f"balance {entry.balance_after:.2f} {account.currency}",
                messages.SUCCESS,
            )

    @admin.action(description="Top up the selected accounts", permissions=["change"])
    def top_up(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        return self._amount_action(request, queryset, adjustment=False)

    @admin.action(description="Adjust the balance of the selected accounts", permissions=["change"])
    def adjust_balance(
        self, request: HttpRequest, queryset: QuerySet[Account]
    ) -> HttpResponse | None:
        return self._amount_action(request, queryset, adjustment=True)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Account], status: str) -> None:
        changed = 0
        for account in queryset.exclude(status=status):
            if account_set_status(account=account, status=status, audit=operator_audit(request)):
                changed += 1
        self.message_user(request, f"{changed} account(s) now {status}.", messages.SUCCESS)

    @admin.action(description="Suspend the selected accounts", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._set_status(request, queryset, Account.Status.SUSPENDED)

    @admin.action(description="Activate the selected accounts", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._set_status(request, queryset, Account.Status.ACTIVE)


@admin.register(Membership)
class MembershipAdmin(ModelAdmin):
    """Added, changed and deleted memberships land in the account's activity log as the
    Account page's do."""

    list_display = ("user", "account", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "user__email", "account__name")
    raw_id_fields = ("user", "account")
    list_select_related = ("user", "account")

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> Any:
        """A membership is one user in one account: another user or account would be
        another membership, and the account left would never log the leaving."""
        return ("user", "account") if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change or "role" in form.changed_data:
            audit_memberships(request, [(obj, {"role": obj.role})])

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        super().delete_model(request, obj)
        audit_memberships(request, [(obj, {"removed": True})])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        with transaction.atomic():
            removed = list(queryset.select_related("user"))
            super().delete_queryset(request, queryset)
            audit_memberships(request, [(m, {"removed": True}) for m in removed])


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Invitations are sent, revoked and accepted by the account's owners in the dashboard;
    operators see them here (the link itself is never stored)."""

    list_display = ("email", "account", "role", "invitation_status", "invited_by", "created_at")
    search_fields = ("email", "account__name")
    list_select_related = ("account", "invited_by")

    @admin.display(description="status")
    def invitation_status(self, obj: Invitation) -> str:
        return obj.status


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    list_display = (
        "name",
        "account",
        "prefix",
        "permission",
        "is_test",
        "key_status",
        "created_at",
        "last_used_at",
        "expires_at",
    )
    list_filter = ("permission", "is_test", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix", "account__name")
    list_select_related = ("account",)
    # Listed field by field so that the digest and the encrypted copy can never appear.
    fields = (
        "account",
        "name",
        "prefix",
        "permission",
        "is_test",
        "expires_at",
        "revoked_at",
        "rotated_at",
        "replaced_by",
        "last_used_at",
        "created_by",
        "created_at",
    )
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description="status")
    def key_status(self, obj: ApiKey) -> str:
        return obj.status

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        """Nothing on a key's page can be changed; saving it writes nothing (a whole row
        written back would undo a revocation committed meanwhile)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A key's secret is shown once to whoever creates it: the dashboard, the API or
        # the create_api_key command.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True).select_related("account"):
            api_key_revoke(
                api_key=key,
                audit=operator_audit(request, by="operator"),
            )
            revoked += 1
        self.message_user(request, f"{revoked} key(s) revoked.", messages.SUCCESS)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = (
        "created_at",
        "account",
        "kind",
        "amount",
        "balance_after",
        "reference",
        "note",
        "created_by",
    )
    list_filter = ("kind",)
    search_fields = ("account__name", "reference", "note")
    list_select_related = ("account", "created_by")
    show_full_result_count = False


@admin.register(ApiRequestLog)
class ApiRequestLogAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = (
        "created_at",
        "account",
        "api_key",
        "method",
        "route",
        "status_code",
        "latency_ms",
        "error_code",
    )
    list_filter = ("method", "status_code")
    search_fields = ("route", "error_code", "account__name")
    list_select_related = ("account", "api_key")
    # The usage log is the biggest table; counting it on every page is not worth it.
    show_full_result_count = False


class TOTPDeviceAdmin(OtpTOTPDeviceAdmin):
    """django-otp's page of users' authenticator apps, where operators remove a lost phone's.
    Removing the confirmed device turns the user's two-factor off: that is in the activity
    log of each of their accounts, as an operator's doing."""

    def delete_model(self, request: HttpRequest, obj: TOTPDevice) -> None:
        with transaction.atomic():
            super().delete_model(request, obj)
            _audit_devices_removed(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TOTPDevice]) -> None:
        with transaction.atomic():
            removed = list(queryset.select_related("user"))
            super().delete_queryset(request, queryset)
            _audit_devices_removed(request, removed)


def _audit_devices_removed(request: HttpRequest, devices: Iterable[TOTPDevice]) -> None:
    users = {device.user_id: device.user for device in devices if device.confirmed}
    for user in users.values():
        if not two_factor.is_enabled(user):
            audit_user_record(
                user=user, action=Action.TWO_FACTOR_DISABLED, audit=operator_audit(request)
            )


if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)
admin.site.register(TOTPDevice, TOTPDeviceAdmin)
