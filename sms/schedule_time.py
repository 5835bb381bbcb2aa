"""A send's ``schedule_time``: when a scheduled message is to go out."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from mifumo.api.fields import ImpossibleMoment, as_utc, iso
from mifumo.errors import DomainError, ErrorCode


def parse_schedule_time(raw: object) -> datetime | None:
    """ISO 8601 with a zone, in the future, at most MIFUMO_MAX_SCHEDULE_DAYS ahead. A
    fraction of a second is rounded up to the next whole second: times are answered to the
    second, and a message must not go out before the moment it was given."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise DomainError(
            ErrorCode.INVALID_SCHEDULE_TIME,
            "schedule_time must be an ISO 8601 string such as 2024-01-01T10:00:00Z",
            {"schedule_time": str(raw)},
        )
    try:
        value = parse_datetime(raw.strip())
    except ValueError:
        value = None
    if value is None:
        raise DomainError(
            ErrorCode.INVALID_SCHEDULE_TIME,
            "schedule_time is not an ISO 8601 date and time",
            {"schedule_time": raw},
        )
    if value.tzinfo is None:
        raise DomainError(
            ErrorCode.INVALID_SCHEDULE_TIME,
            "schedule_time needs a time zone, for example 2024-01-01T10:00:00Z or +03:00",
            {"schedule_time": raw},
        )
    try:
        value = as_utc(value)
    except ImpossibleMoment as exc:
        raise DomainError(
            ErrorCode.INVALID_SCHEDULE_TIME, f"schedule_time {exc}", {"schedule_time": raw}
        ) from None
    now = timezone.now()
    if value <= now:
        raise DomainError(
            ErrorCode.INVALID_SCHEDULE_TIME,
            "schedule_time is in the past",
            {"schedule_time": raw, "now": iso(now)},
        )
    limit = now + timedelta(days=settings.MIFUMO_MAX_SCHEDULE_DAYS)
    if value > limit:
        raise DomainError(
            ErrorCode.INVALID_SCHEDULE_TIME,
            f"schedule_time is more than {settings.MIFUMO_MAX_SCHEDULE_DAYS} days ahead",
            {"schedule_time": raw, "latest": iso(limit)},
        )
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value
