from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django import template
from django.core.paginator import Page

from integration.audit import action_label as _action_label

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


@register.simple_tag
def page_numbers(page: Page) -> list[int | str]:
    """Page numbers around the current one, with the first and last, "…" for gaps."""
    return [
        n if isinstance(n, int) else "…"
        for n in page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1)
    ]


@register.filter
def in_zone(value: datetime | None, zone: str) -> str:
    """A moment as the clock in ``zone`` shows it (the date filter shows UTC)."""
    if value is None:
        return "—"
    try:
        local = value.astimezone(zoneinfo.ZoneInfo(zone))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        local = value.astimezone(UTC)
    return local.strftime("%d %b %Y %H:%M")


@register.filter
def subtract(value: Decimal | None, other: Decimal | None) -> Decimal:
    return Decimal(value or 0) - Decimal(other or 0)
