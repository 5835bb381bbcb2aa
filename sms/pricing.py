"""Price per SMS part by destination: the longest matching prefix among active rules.

The rules are kept in the process. Within an API request they are used while the price
rules' cache version (``mifumo.local_cache``), read by the request with its rate limits, is
the one read before they were loaded; every save or delete of a rule (services, the admin,
commands) bumps it. Elsewhere (tasks, the dashboard) they are kept for at most
``_CACHE_SECONDS``, and a change made in this process is seen at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models.signals import post_delete, post_save

from mifumo import local_cache
from sms.models import PriceRule

VERSION = "price-rules"
_CACHE_SECONDS = 30.0
_RULES: local_cache.VersionedCache[None, dict[str, Decimal]] = local_cache.VersionedCache(
    max_entries=1, max_age=60.0
)

local_cache.read_in_every_request(VERSION)


def _rules() -> dict[str, Decimal]:
    """prefix digits -> price; kept so a 10,000-recipient send reads rules once."""
    known, version = local_cache.validated(VERSION)
    entry = _RULES.get(None)
    if entry is not None:
        if known and entry.current(version):
            return entry.value
        if not known and time.monotonic() - entry.loaded_at <= _CACHE_SECONDS:
            return entry.value
    rules = {r.match: r.price_per_segment for r in PriceRule.objects.filter(active=True)}
    _RULES.put(None, rules, version if known else local_cache.UNVERIFIED)
    return rules


def clear_cache(**_: object) -> None:
    _RULES.clear()


def _rule_changed(**_: object) -> None:
    clear_cache()
    local_cache.bump_now_and_on_commit([VERSION])


post_save.connect(_rule_changed, sender=PriceRule, dispatch_uid="sms.pricing.saved")
post_delete.connect(_rule_changed, sender=PriceRule, dispatch_uid="sms.pricing.deleted")


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
