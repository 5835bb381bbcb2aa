"""Output formatting shared by every API: times in UTC with Z, money as numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def money(value: Decimal | None) -> float | None:
    return None if value is None else float(value.quantize(Decimal("0.01")))
