"""Phone numbers: parse with the default region TZ, accept mobile numbers only, E.164 out."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberType

DEFAULT_REGION = "TZ"
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
MAX_INPUT_LENGTH = 32


_TZ = PhoneMetadata.metadata_for_region(DEFAULT_REGION)
# ASCII: the metadata's patterns say \d, which in Python also matches other scripts' digits
# ("+2557١٢345678" would pass as it came, neither E.164 nor equal to the number it spells).
# Anything else goes to the parser, which reads such digits as the digits they are.
_TZ_MOBILE = (
    re.compile(_TZ.mobile.national_number_pattern, re.ASCII)
    if _TZ and _TZ.mobile and _TZ.mobile.national_number_pattern
    else None
)
# Types that the number_type check looks at before mobile; a match there is not "mobile".
_TZ_NOT_MOBILE = [
    re.compile(desc.national_number_pattern, re.ASCII)
    for desc in (
        (
            _TZ.premium_rate,
            _TZ.toll_free,
            _TZ.shared_cost,
            _TZ.voip,
            _TZ.personal_number,
            _TZ.pager,
            _TZ.uan,
            _TZ.voicemail,
            _TZ.fixed_line,
        )
        if _TZ
        else ()
    )
    if desc is not None and desc.national_number_pattern
]
_TZ_SHAPE = re.compile(r"(?:\+255|00255|255|0)?([1-9][0-9]{8})")
_SEPARATORS = str.maketrans("", "", " -().")


def _tanzanian_mobile(text: str) -> str | None:
    """The common case without the full parser: a Tanzanian mobile number in one of its usual
    forms (+255…, 255…, 0…, 9 digits). A bulk send is mostly these, and the general parser
    costs about a tenth of a millisecond a number. None means: ask the parser."""
    match = _TZ_SHAPE.fullmatch(text.translate(_SEPARATORS))
    if match is None or _TZ_MOBILE is None:
        return None
    national = match.group(1)
    if not _TZ_MOBILE.fullmatch(national):
        return None
    if any(pattern.fullmatch(national) for pattern in _TZ_NOT_MOBILE):
        return None
    return f"+255{national}"


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
    fast = _tanzanian_mobile(text)
    if fast is not None:
        return fast
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
