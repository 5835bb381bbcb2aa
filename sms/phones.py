"""Phone numbers: parse with the default region TZ, accept mobile numbers only, E.164 out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

DEFAULT_REGION = "TZ"
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
MAX_INPUT_LENGTH = 32


class InvalidPhone(ValueError):
    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(reason)
        self.raw = raw
        self.reason = reason


def normalize_phone(raw: object) -> str:
    """``0712 345 678``, ``712345678`` and ``+255 712 345 678`` all give ``+255712345678``.

    Raises InvalidPhone with a reason a person can act on.
    """
    if not isinstance(raw, str):
        raise InvalidPhone(str(raw), "must be a string")
    text = raw.strip()
    if not text:
        raise InvalidPhone(raw, "is empty")
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidPhone(raw[:MAX_INPUT_LENGTH], "is too long to be a phone number")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except NumberParseException:
        raise InvalidPhone(raw, "is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(raw, "is not a valid phone number")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidPhone(raw, "is not a mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class ParsedPhones:
    valid: list[str]  # E.164, first-seen order, duplicates removed
    invalid: list[dict[str, str]]  # [{"phone": raw, "reason": …}]


def parse_phones(raws: Iterable[object]) -> ParsedPhones:
    seen: dict[str, None] = {}
    invalid: list[dict[str, str]] = []
    for raw in raws:
        try:
            seen.setdefault(normalize_phone(raw), None)
        except InvalidPhone as exc:
            invalid.append({"phone": exc.raw, "reason": exc.reason})
    return ParsedPhones(valid=list(seen), invalid=invalid)


def phone_search_digits(fragment: str) -> str:
    """Digits to look for in stored E.164 numbers for a search fragment: ``0712…`` and
    ``712…`` both search ``712…``, ``+255712…`` searches ``255712…``."""
    digits = "".join(ch for ch in fragment if ch.isdigit())
    if digits.startswith("0") and not fragment.strip().startswith("+"):
        digits = digits.lstrip("0")
    return digits
