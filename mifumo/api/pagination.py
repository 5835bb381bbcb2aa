"""Query parameters for paging and dates, with envelope errors instead of 500s."""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework.request import Request

from mifumo.api.errors import ApiError, ErrorCode
from mifumo.api.fields import ImpossibleMoment, as_utc

T = TypeVar("T")


def _bad(name: str, reason: str) -> ApiError:
    return ApiError(ErrorCode.VALIDATION_ERROR, f"Invalid {name}: {reason}", {name: [reason]})


def int_param(request: Request, name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"must be a whole number, got {raw[:40]!r}") from None
    if value < minimum or value > maximum:
        raise _bad(name, f"must be between {minimum} and {maximum}")
    return value


def datetime_param(request: Request, name: str, *, end_of_day: bool = False) -> datetime | None:
    """ISO 8601 date or datetime; a date means its start (or end) in UTC; naive means UTC."""
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    value: datetime | None = None
    try:
        day = parse_date(raw)  # a bare date; parse_datetime would read it as midnight
        if day is not None:
            value = datetime.combine(day, time.max if end_of_day else time.min)
        else:
            value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        raise _bad(name, "must be ISO 8601, e.g. 2024-01-01 or 2024-01-01T00:00:00Z")
    if timezone.is_naive(value):
        return value.replace(tzinfo=UTC)
    try:
        return as_utc(value)
    except ImpossibleMoment as exc:
        raise _bad(name, f"the moment {exc}") from None


def date_range_params(request: Request) -> tuple[datetime | None, datetime | None]:
    """``start_date`` and ``end_date`` as the start and end of a list's filter; an
    end before the start is an error rather than an empty list."""
    start = datetime_param(request, "start_date")
    end = datetime_param(request, "end_date", end_of_day=True)
    if start is not None and end is not None and end < start:
        raise _bad("end_date", "is before start_date")
    return start, end


def choice_param(request: Request, name: str, choices: list[str]) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise _bad(name, f"must be one of {', '.join(choices)}")
    return raw


def count_rows(rows: QuerySet[Any]) -> int:
    """The exact count, remembered briefly when it is large.

    Counting a million matching rows takes a PostgreSQL index scan of ~0.2 s, on every page a
    client fetches while it walks the list. A large total is therefore cached for
    MIFUMO_COUNT_CACHE_SECONDS per query (it can lag by that much); small totals are always
    counted afresh."""
    return _count_remembered(str(rows.query), rows.count)


def count_sql(sql: str, params: Sequence[Any]) -> int:
    """``count_rows`` for a ``SELECT count(*) ...`` statement."""

    def run() -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])

    return _count_remembered(f"{sql} {params!r}", run)


def _count_remembered(query: str, count: Callable[[], int]) -> int:
    key = "count:" + hashlib.sha256(query.encode()).hexdigest()
    try:
        cached = cache.get(key)
    except Exception:  # noqa: BLE001 - the cache being down must not fail a listing
        cached = None
    if cached is not None:
        return int(cached)
    total = count()
    if total > settings.MIFUMO_COUNT_CACHE_THRESHOLD:
        # The cache being down only costs the next page a fresh count.
        with contextlib.suppress(Exception):
            cache.set(key, total, settings.MIFUMO_COUNT_CACHE_SECONDS)
    return total


def page_params(
    request: Request, *, default_per_page: int = 50, max_per_page: int = 100
) -> tuple[int, int]:
    """The ``page`` and ``per_page`` a listing was asked for, as ``paginate`` reads them."""
    page = int_param(request, "page", 1, minimum=1, maximum=1_000_000)
    per_page = int_param(request, "per_page", default_per_page, minimum=1, maximum=max_per_page)
    return page, per_page


def paginate(
    request: Request,
    count: Callable[[], int],
    read: Callable[[int, int], list[T]],
    *,
    default_per_page: int = 50,
    max_per_page: int = 100,
) -> tuple[list[T], dict[str, int]]:
    """The page a listing was asked for (``page``, ``per_page``) and its ``pagination``
    object: ``count()`` gives the total, ``read(offset, limit)`` the rows, asked only when
    the page has some."""

    def counted_then_read(offset: int, limit: int) -> tuple[int, list[T]]:
        total = count()
        return total, (read(offset, limit) if offset < total else [])

    return paginate_read(
        request, counted_then_read, default_per_page=default_per_page, max_per_page=max_per_page
    )


def paginate_read(
    request: Request,
    read: Callable[[int, int], tuple[int, list[T]]],
    *,
    default_per_page: int = 50,
    max_per_page: int = 100,
) -> tuple[list[T], dict[str, int]]:
    """``paginate`` for a listing that reads its total and its rows together:
    ``read(offset, limit)`` gives both (no rows when ``offset`` is past the total)."""
    page, per_page = page_params(
        request, default_per_page=default_per_page, max_per_page=max_per_page
    )
    total, items = read((page - 1) * per_page, per_page)
    return items, {
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": math.ceil(total / per_page) if total else 0,
    }


def paginate_pages(
    request: Request, rows: QuerySet[Any], *, default_per_page: int = 50, max_per_page: int = 100
) -> tuple[list[Any], dict[str, int]]:
    """``paginate`` over a queryset, its total counted by ``count_rows``."""
    return paginate(
        request,
        lambda: count_rows(rows),
        lambda offset, limit: list(rows[offset : offset + limit]),
        default_per_page=default_per_page,
        max_per_page=max_per_page,
    )
