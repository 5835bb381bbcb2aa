"""Operators' admin for carrier routes (prefix -> carriers in failover order) and a read-only
view of submit attempts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin

from sms.models import CarrierRoute, SubmitAttempt

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin


class CarrierListField(forms.CharField):
    """Carrier names typed as "vodacom, airtel_backup", stored as a JSON list."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(name) for name in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [name.strip() for name in text.split(",") if name.strip()]


class CarrierRouteForm(forms.ModelForm):
    carriers = CarrierListField(
        help_text="Comma-separated names from MIFUMO_CARRIERS, tried in this order",
    )

    class Meta:
        model = CarrierRoute
        fields = ("prefix", "carriers", "active", "description")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = ", ".join(sorted(settings.MIFUMO_CARRIERS))
        self.fields["carriers"].help_text += f". Configured: {names}"


class CarrierRouteAdmin(ModelAdmin):
    form = CarrierRouteForm
    list_display = ("prefix", "carrier_list", "active", "description", "updated_at")
    list_filter = ("active",)
    search_fields = ("prefix", "description")
    ordering = ("prefix",)

    @admin.display(description="carriers")
    def carrier_list(self, route: CarrierRoute) -> str:
        return " -> ".join(route.carrier_names)


class SubmitAttemptAdmin(ModelAdmin):
    list_display = (
        "created_at",
        "carrier",
        "message",
        "recipient_count",
        "accepted",
        "rejected",
        "error_code",
        "latency_ms",
    )
    list_filter = ("carrier",)
    search_fields = ("message__id", "error_code")
    date_hierarchy = "created_at"
    list_select_related = ("message",)
    raw_id_fields = ("message",)

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


def register() -> None:
    for model, model_admin in (
        (CarrierRoute, CarrierRouteAdmin),
        (SubmitAttempt, SubmitAttemptAdmin),
    ):
        if not admin.site.is_registered(model):
            admin.site.register(model, model_admin)
