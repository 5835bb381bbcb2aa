"""Price per SMS part by destination: the longest matching prefix among active rules."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sms.models import PriceRule

_CACHE_SECONDS = 30.0
_cache: tuple[float, dict[str, Decimal]] | None = None


def _rules() -> dict[str, Decimal]:
    """prefix digits -> price; cached briefly so a 10,000-recipient send reads rules once."""
    global _cache
    now = time.monotonic()
    if _cache is None or now - _cache[0] > _CACHE_SECONDS:
        rules = {r.match: r.price_per_segment for r in PriceRule.objects.filter(active=True)}
        _cache = (now, rules)
    return _cache[1]


def clear_cache() -> None:
    global _cache
    _cache = None


@dataclass(frozen=True)
class Quote:
    prices: dict[str, Decimal]  # phone -> price per part
    unsupported: list[str]


def price_phones(phones: Iterable[str]) -> Quote:
    rules = _rules()
    lengths = sorted({len(p) for p in rules}, reverse=True)
    prices: dict[str, Decimal] = {}
    unsupported: list[str] = []
    for phone in phones:
        digits = phone.lstrip("+")
        for length in lengths:
            price = rules.get(digits[:length])
            if price is not None:
                prices[phone] = price
                break
        else:
            unsupported.append(phone)
    return Quote(prices=prices, unsupported=unsupported)
