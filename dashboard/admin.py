from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin

from integration.admin import ReadOnlyAdminMixin
from integration.audit import action_label
from integration.models import AuditEvent

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ("created_at", "account", "actor", "operator", "what", "target", "ip")
    list_filter = ("action", "operator")
    search_fields = ("account__name", "actor__username", "target", "=ip")
    list_select_related = ("account", "actor")
    show_full_result_count = False

    @admin.display(description="action", ordering="action")
    def what(self, obj: AuditEvent) -> str:
        return action_label(obj.action)
