"""Tag normalisation shared by the API, the CSV import and segment criteria.

Tags are stored trimmed, lower-cased and de-duplicated so that segment matching is an exact
comparison: "VIP", " vip " and "vip" are one tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_TAG_LENGTH = 50
MAX_TAGS = 50
# The CSV format separates tags with these, so a tag containing one could not round-trip.
SEPARATORS = ";|"
_SPLIT = re.compile(r"[;|]")


class TagError(ValueError):
    pass


def normalize_tags(values: Iterable[object]) -> list[str]:
    """Trimmed, lower-cased, first-seen order, duplicates removed; raises TagError."""
    seen: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            raise TagError("Each tag must be a string")
        tag = value.strip().lower()
        if not tag:
            raise TagError("Tags must not be empty")
        if len(tag) > MAX_TAG_LENGTH:
            raise TagError(f"Tag '{tag[:20]}…' is longer than {MAX_TAG_LENGTH} characters")
        if any(sep in tag for sep in SEPARATORS):
            raise TagError(f"Tag '{tag}' must not contain ';' or '|'")
        seen.setdefault(tag, None)
    if len(seen) > MAX_TAGS:
        raise TagError(f"At most {MAX_TAGS} tags are allowed, got {len(seen)}")
    return list(seen)


def split_tags(cell: str) -> list[str]:
    """A CSV cell such as ``vip; customer|Lead`` -> normalised tags; empty parts are ignored."""
    return normalize_tags(part for part in _SPLIT.split(cell) if part.strip())


def join_tags(tags: Iterable[str]) -> str:
    return ";".join(tags)
