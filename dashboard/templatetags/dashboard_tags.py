from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django import template

from dashboard.audit import action_label as _action_label

register = template.Library()


@register.filter
def get_item(mapping: Mapping[Any, Any] | None, key: Any) -> Any:
    return None if mapping is None else mapping.get(key)


@register.filter
def action_label(action: str) -> str:
    return _action_label(action)


@register.filter
def money(value: Decimal | float | int | None) -> str:
    if value is None:
        return "—"
    return f"{Decimal(value):,.2f}"


@register.filter
def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f} ms" if value >= 10 else f"{value:,.1f} ms"


@register.filter
def pct(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}%"


@register.filter
def number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


@register.filter
def status_label(status: str) -> str:
    return str(status).replace("_", " ").capitalize()
