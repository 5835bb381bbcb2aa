"""Custom fields on contacts: an object of short keys and string values, filled into
message placeholders (``{{order_id}}``) and matched by segment criteria.

Keys match ``^[a-z][a-z0-9_]{0,31}$`` and are not one of a contact's own fields (``name``,
``phone`` and the CSV columns), so a placeholder or a CSV column always means one thing.
Values are strings of at most 255 characters; a contact has at most 20 keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAX_KEYS = 20
MAX_VALUE_LENGTH = 255
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
_KEY = re.compile(KEY_PATTERN)
RESERVED_KEYS = frozenset(
    {"name", "phone", "phone_number", "email", "tags", "is_active", "opted_out"}
)


class CustomFieldError(ValueError):
    pass


def key_error(key: object) -> str | None:
    """Why ``key`` cannot name a custom field, or None."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return (
            f"'{str(key)[:40]}' is not a valid key: lower-case letters, digits and _, "
            "starting with a letter, at most 32 characters"
        )
    if key in RESERVED_KEYS:
        return f"'{key}' is reserved for the contact's own field"
    return None


def value_error(key: str, value: object) -> str | None:
    if not isinstance(value, str):
        return f"the value of '{key}' must be a string"
    if len(value) > MAX_VALUE_LENGTH:
        return f"the value of '{key}' is longer than {MAX_VALUE_LENGTH} characters"
    return None


def parse_custom_fields(value: object, *, allow_null: bool = False) -> dict[str, str | None]:
    """Validate custom fields from a request. With ``allow_null`` (a change), a None value
    asks to remove the key. Raises CustomFieldError naming what is wrong."""
    if not isinstance(value, Mapping):
        raise CustomFieldError("must be an object of string values")
    out: dict[str, str | None] = {}
    for key, raw in value.items():
        problem = key_error(key)
        if problem is None and not (allow_null and raw is None):
            problem = value_error(key, raw)
        if problem:
            raise CustomFieldError(problem)
        out[key] = raw
    if len([v for v in out.values() if v is not None]) > MAX_KEYS:
        raise CustomFieldError(f"at most {MAX_KEYS} keys")
    return out


def merge_custom_fields(current: Mapping[str, Any], changes: Mapping[str, str | None]) -> dict:
    """``current`` with ``changes`` applied (None removes a key); raises CustomFieldError
    when the result has too many keys."""
    merged = {k: v for k, v in current.items() if isinstance(v, str)}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_KEYS:
        raise CustomFieldError(f"at most {MAX_KEYS} keys; the change would make {len(merged)}")
    return merged
