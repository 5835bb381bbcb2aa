"""Personalised messages: placeholders in a text, filled per recipient.

``{{name}}`` and ``{{phone}}`` are the contact's name and number, ``{{KEY}}`` a custom field
of the contact (``contacts.custom_fields``) or a send's ``variables``, and
``{{KEY|default text}}`` falls back to the default when the recipient has no value. Spaces
inside the braces are allowed (``{{ name }}``); the default runs to the first ``}}`` and may
hold ``|`` or a single ``}``. Single braces are plain text, and so is a brace next to a
placeholder (``{{{name}}}`` is the name in braces). An empty value counts as no value.

Values come, first found first, from the send's variables, then the contact (a number that
is not a contact has only ``phone``). A text without ``{{`` is not a template at all, so a
plain send pays nothing for this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from contacts.custom_fields import KEY_PATTERN
from mifumo.errors import DomainError, ErrorCode

_PLACEHOLDER = re.compile(r"\{\{([^{].*?)\}\}", re.DOTALL)
_KEY = re.compile(KEY_PATTERN)
MARK = "{{"
# How many recipients an error names; the count says how many there were in all.
MAX_REPORTED = 100


class TemplateError(ValueError):
    """A placeholder that cannot be read; ``problems`` name each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Placeholder:
    key: str
    default: str | None


@dataclass(frozen=True)
class Template:
    text: str
    pieces: tuple[str | Placeholder, ...]

    @property
    def placeholders(self) -> list[Placeholder]:
        return [p for p in self.pieces if isinstance(p, Placeholder)]

    @property
    def keys(self) -> set[str]:
        return {p.key for p in self.placeholders}

    def render(self, values: Mapping[str, str]) -> tuple[str, list[str]]:
        """The text for one recipient, and the keys it lacks (no value and no default)."""
        pieces, missing = self.resolve(values)
        return "".join(pieces), missing

    def resolve(self, values: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """The pieces of one recipient's text (joined, they are its text), and the keys it
        lacks: its length is known before any text is built."""
        out: list[str] = []
        missing: list[str] = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            value = values.get(piece.key) or piece.default
            if value is None:
                if piece.key not in missing:
                    missing.append(piece.key)
                continue
            out.append(value)
        return out, missing


def has_placeholders(text: str) -> bool:
    return MARK in text


def parse_template(text: str) -> Template | None:
    """The placeholders of ``text``, or None when it has none. Raises TemplateError for a
    placeholder that cannot be read."""
    if MARK not in text:
        return None
    pieces: list[str | Placeholder] = []
    problems: list[str] = []
    end = 0
    for match in _PLACEHOLDER.finditer(text):
        pieces.append(text[end : match.start()])
        end = match.end()
        inner = match.group(1)
        key, bar, default = inner.partition("|")
        key = key.strip()
        if not _KEY.fullmatch(key):
            problems.append(
                f"'{match.group(0)[:40]}' is not a placeholder: use {{{{name}}}}, "
                "{{phone}} or {{key}} with a custom field key (lower-case letters, digits "
                "and _), optionally {{key|default}}"
            )
            continue
        pieces.append(Placeholder(key, default.strip() if bar else None))
    pieces.append(text[end:])
    unclosed = [p for p in pieces if isinstance(p, str) and MARK in p]
    if unclosed:
        problems.append("'{{' opens a placeholder that is never closed with '}}'")
    if problems:
        raise TemplateError(problems)
    if not any(isinstance(p, Placeholder) for p in pieces):
        return None
    return Template(text=text, pieces=tuple(p for p in pieces if p != ""))


def placeholder_keys(text: str) -> list[str]:
    """The keys a text's placeholders name, first seen first; none for a malformed text."""
    try:
        template = parse_template(text)
    except TemplateError:
        return []
    return list(dict.fromkeys(p.key for p in template.placeholders)) if template else []


def parse_variables(value: object) -> dict[str, str]:
    """A send's ``variables``: an object of placeholder keys and string values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("must be an object of string values")
    for key, item in value.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"'{str(key)[:40]}' is not a valid placeholder key")
        if not isinstance(item, str):
            raise ValueError(f"the value of '{key}' must be a string")
    return dict(value)


@dataclass(frozen=True)
class RecipientValues:
    """What a recipient's placeholders can draw on."""

    phone: str
    name: str | None = None
    custom_fields: Mapping[str, object] | None = None


@dataclass
class Rendered:
    texts: dict[str, str]  # phone -> its text (those over the length limit left out)
    missing: list[tuple[str, list[str]]]  # (phone, keys) of recipients lacking values
    unknown: list[str]  # keys no recipient, variable or default fills
    over: list[tuple[str, int]] = field(default_factory=list)  # (phone, length) over the limit


def render_all(
    template: Template,
    recipients: Iterable[RecipientValues],
    variables: Mapping[str, str] | None = None,
    *,
    limit: int | None = None,
) -> Rendered:
    """Every recipient's text. With ``limit`` (characters), a text longer than that is only
    measured, never built: one long value times many recipients must not fill the memory
    of the process that refuses it."""
    variables = {k: v for k, v in (variables or {}).items() if v}
    texts: dict[str, str] = {}
    over: list[tuple[str, int]] = []
    missing: list[tuple[str, list[str]]] = []
    filled: set[str] = set(variables)
    for recipient in recipients:
        values: dict[str, str] = {"phone": recipient.phone}
        if recipient.name:
            values["name"] = recipient.name
        for key, value in (recipient.custom_fields or {}).items():
            if isinstance(value, str) and value:
                values[key] = value
        values.update(variables)
        pieces, lacking = template.resolve(values)
        if lacking:
            missing.append((recipient.phone, lacking))
        filled.update(k for k in template.keys if k in values)
        length = sum(map(len, pieces))
        if limit is not None and length > limit:
            over.append((recipient.phone, length))
        else:
            texts[recipient.phone] = "".join(pieces)
    unknown = sorted(
        {p.key for p in template.placeholders if p.default is None} - filled - {"name"}
    )
    return Rendered(texts=texts, missing=missing, unknown=unknown, over=over)


def refuse_unsendable(rendered: Rendered) -> None:
    """VALIDATION_ERROR, naming recipients, when a placeholder without a default has no value
    for some, or when a text renders empty (a blank SMS; nothing else would stop it)."""
    if rendered.missing:
        first_phone, first_keys = rendered.missing[0]
        unknown = f"; no recipient has {', '.join(rendered.unknown)}" if rendered.unknown else ""
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            f"{len(rendered.missing)} recipient(s) have no value for a placeholder without a "
            f"default (first: {first_phone} lacks {', '.join(first_keys)}){unknown}",
            {
                "missing": [
                    {"phone": phone, "fields": fields}
                    for phone, fields in rendered.missing[:MAX_REPORTED]
                ],
                "missing_count": len(rendered.missing),
                "unknown": rendered.unknown,
            },
        )
    empty = [phone for phone, text in rendered.texts.items() if not text.strip()]
    if empty:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            f"{len(empty)} recipient(s) would get an empty text (first: {empty[0]}): give "
            "their placeholders a value or a default",
            {"empty": empty[:MAX_REPORTED], "empty_count": len(empty)},
        )
