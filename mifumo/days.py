"""UTC calendar days: the days the API and the dashboard report in, whatever the server's
time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone


def today() -> date:
    return timezone.now().astimezone(UTC).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def day_end(day: date) -> datetime:
    """When the UTC day ends: the next day's start (the last day a date can name ends at
    the last moment a datetime can)."""
    if day >= date.max:
        return datetime.max.replace(tzinfo=UTC)
    return day_start(day + timedelta(days=1))


def days_back(days: int) -> list[date]:
    """The last ``days`` UTC days, oldest first, today included."""
    last = today()
    return [last - timedelta(days=n) for n in range(days - 1, -1, -1)]


def per_day(rows: QuerySet[Any], field_name: str = "created_at") -> QuerySet[Any]:
    """The rows grouped by the UTC day of ``field_name`` (as ``day``), oldest first; annotate
    it with the aggregates wanted per day."""
    return rows.annotate(day=TruncDate(field_name, tzinfo=UTC)).values("day").order_by("day")
