"""Text that no database column can hold: NUL characters (PostgreSQL text refuses them) and
lone surrogates (``"\\ud800"`` in JSON decodes to a string UTF-8 cannot encode).

Every API request is checked once, before its view runs (``integration.views.ApiView``): path
ids, query parameters, and every key and string of the body, however deeply nested. The
answer is 400 VALIDATION_ERROR naming the field, so no such text reaches a query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from mifumo.api.errors import ApiError, ErrorCode


def problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it contains a lone surrogate)"
    return None


SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` with every string in it (keys and nested values too) made storable: NUL
    taken out, a lone surrogate replaced by U+FFFD. For text from outside that must be kept
    rather than refused (a carrier's receipt or inbound message, which it would otherwise
    send again forever)."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "")
        if not value.isascii():
            value = SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, Mapping):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def _walk(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, problem) for every unstorable key and string inside ``value``."""
    if isinstance(value, str):
        found = problem(value)
        if found:
            yield where, found
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found = problem(key) if isinstance(key, str) else None
            if found:
                # Never echo the key: the answer itself must be storable and encodable.
                yield where, f"a key {found}"
            else:
                yield from _walk(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{where}[{index}]")


def _field(where: str) -> str:
    """The top-level field a path such as ``criteria.tags[0]`` is in."""
    return where.split(".", 1)[0].split("[", 1)[0] or "body"


def check(fields: Mapping[str, Any], *, body: Any = None) -> None:
    """Raise VALIDATION_ERROR naming every field (path id, query parameter or body field)
    that holds unstorable text."""
    errors: dict[str, list[str]] = {}
    for name, value in fields.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            for _where, found in _walk(item, ""):
                errors.setdefault(name if problem(name) is None else "parameters", []).append(found)
    for where, found in _walk(body, ""):
        field = _field(where)
        inner = where[len(field) :].lstrip(".") if where.startswith(field) else ""
        errors.setdefault(field, []).append(f"{inner}: {found}" if inner else found)
    if errors:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"Invalid text in {', '.join(sorted(errors))}",
            {name: messages[:5] for name, messages in errors.items()},
        )
