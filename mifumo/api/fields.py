"""Times and money shared by every API: times out in UTC with Z, times in checked into UTC,
money as numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import overload

# No zone is further from UTC (Kiribati +14:00); PostgreSQL refuses offsets past ±15:59.
MAX_UTC_OFFSET = timedelta(hours=14)


class ImpossibleMoment(ValueError):
    """A date and time that no clock shows; the message says why."""


def as_utc(value: datetime) -> datetime:
    """An aware ``value`` in UTC. ImpossibleMoment when no clock shows it: an offset beyond
    ±14:00, or a date that leaves the calendar once converted (9999-12-31T23:00:00-05:00)."""
    offset = value.utcoffset()
    if offset is None:
        raise ImpossibleMoment("has no time zone")
    if abs(offset) > MAX_UTC_OFFSET:
        raise ImpossibleMoment("has a UTC offset no time zone has (at most ±14:00)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ImpossibleMoment("is out of range once converted to UTC") from None


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: datetime | None) -> str | None: ...


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def money(value: Decimal | None) -> float | None:
    return None if value is None else float(value.quantize(Decimal("0.01")))
