"""Segment criteria: validation into a canonical JSON form, and that form -> one Q.

Keys (all optional, combined with AND; no key at all means every contact):

- ``tags``: contacts having any of these tags
- ``tags_all``: contacts having all of these tags
- ``is_active``, ``opted_out``: booleans
- ``created_after``: created at or after this moment
- ``created_before``: created strictly before this moment
- ``custom_fields``: an object of custom field keys and values the contact has, each equal
  (containment, which the GIN index on the column serves)

Moments are dates (``YYYY-MM-DD``, midnight UTC) or ISO 8601 datetimes with a zone, so
``created_after`` and ``created_before`` together describe a half-open range.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from django.db.models import Q
from django.utils.dateparse import parse_date, parse_datetime

from contacts.custom_fields import CustomFieldError, parse_custom_fields
from contacts.tags import TagError, normalize_tags
from mifumo.api.fields import ImpossibleMoment, as_utc, iso

KEYS = (
    "tags",
    "tags_all",
    "is_active",
    "opted_out",
    "created_after",
    "created_before",
    "custom_fields",
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MOMENT_HINT = "must be a date (YYYY-MM-DD) or an ISO 8601 datetime with a time zone"


class CriteriaError(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid segment criteria")
        self.errors = errors


def criteria_parse(value: object) -> dict[str, Any]:
    """Validate criteria from a request; returns the canonical form to store.

    Raises CriteriaError naming every bad key.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CriteriaError({"non_field_errors": ["Criteria must be an object"]})
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    for key, raw in value.items():
        try:
            out[key] = _parse_one(str(key), raw)
        except ValueError as exc:
            errors[str(key)] = [str(exc)]
    if (
        not errors
        and "created_after" in out
        and "created_before" in out
        and moment(out["created_before"]) <= moment(out["created_after"])
    ):
        errors["created_before"] = ["Must be later than created_after"]
    if errors:
        raise CriteriaError(errors)
    return {key: out[key] for key in KEYS if key in out}


def _parse_one(key: str, raw: object) -> Any:
    if key in ("tags", "tags_all"):
        if not isinstance(raw, list) or not raw:
            raise ValueError("Must be a non-empty list of tags")
        try:
            return normalize_tags(raw)
        except TagError as exc:
            raise ValueError(str(exc)) from None
    if key in ("is_active", "opted_out"):
        if not isinstance(raw, bool):
            raise ValueError("Must be true or false")
        return raw
    if key in ("created_after", "created_before"):
        return _canonical_moment(raw)
    if key == "custom_fields":
        try:
            fields = parse_custom_fields(raw)
        except CustomFieldError as exc:
            raise ValueError(str(exc)) from None
        if not fields:
            raise ValueError("Must name at least one custom field")
        return dict(sorted(fields.items()))
    raise ValueError(f"Unknown criterion; use one of: {', '.join(KEYS)}")


def _canonical_moment(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError(_MOMENT_HINT)
    text = raw.strip()
    try:
        if _DATE.match(text):
            day = parse_date(text)
            if day is not None:
                return day.isoformat()
        else:
            parsed = parse_datetime(text)
            if parsed is not None and parsed.tzinfo:
                utc = as_utc(parsed)
                if utc.microsecond:
                    # A fraction of a second is part of the moment (a client's toISOString()
                    # sends milliseconds): cut off, contacts of that second land wrongly.
                    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")
                return iso(utc)
    except ImpossibleMoment as exc:
        raise ValueError(f"The moment {exc}") from None
    except ValueError:
        pass
    raise ValueError(_MOMENT_HINT)


def moment(canonical: str) -> datetime:
    if _DATE.match(canonical):
        return datetime.combine(date.fromisoformat(canonical), time.min, tzinfo=UTC)
    parsed = parse_datetime(canonical)
    assert parsed is not None
    return parsed


def criteria_q(criteria: Mapping[str, Any]) -> Q:
    """Canonical criteria -> a filter over Contact (the caller scopes it to the account)."""
    q = Q()
    if "tags" in criteria:
        q &= Q(tags__any_of=criteria["tags"])
    if "tags_all" in criteria:
        q &= Q(tags__all_of=criteria["tags_all"])
    if "is_active" in criteria:
        q &= Q(is_active=criteria["is_active"])
    if "opted_out" in criteria:
        q &= Q(opted_out=criteria["opted_out"])
    if "created_after" in criteria:
        q &= Q(created_at__gte=moment(criteria["created_after"]))
    if "created_before" in criteria:
        q &= Q(created_at__lt=moment(criteria["created_before"]))
    if "custom_fields" in criteria:
        q &= Q(custom_fields__contains=criteria["custom_fields"])
    return q
