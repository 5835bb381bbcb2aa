"""Per-account rate limits over the shared Django cache (Redis in production).

Buckets: ``api`` counts every authenticated request, ``sms_send`` the send requests,
``contacts`` contact and segment operations; unauthenticated requests are counted per
client address. Fixed windows; a request's buckets are counted in one round trip to
Redis. When the cache is unreachable, limits fail open (requests are served and the outage
is logged) so that a Redis outage does not stop sending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from integration.models import Account
from mifumo.client_ip import client_address
from mifumo.counters import count_and_mark, window_end

logger = logging.getLogger(__name__)

_OVERRIDE_FIELD = {
    "sms_send": "sms_per_minute",
    "api": "api_per_hour",
    "contacts": "contacts_per_hour",
}


@dataclass(frozen=True)
class Usage:
    bucket: str
    limit: int
    window: int  # seconds
    count: int
    reset_in: int  # seconds until the window resets

    @property
    def remaining(self) -> int:
        return max(self.limit - self.count, 0)

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_in),
        }


def account_rate(account: Account, bucket: str) -> tuple[int, int]:
    limit, window = settings.MIFUMO_RATE_LIMITS[bucket]
    override = getattr(account, _OVERRIDE_FIELD[bucket])
    return (override if override else limit), window


def _window(key: str, seconds: int) -> tuple[int, int]:
    """The fixed window a request falls in: (its end as a Unix time, seconds left), with
    resets spread out over keys."""
    now = int(time.time())
    end = window_end(key, seconds, now, spread=True)
    return end, end - now


def _hit(
    buckets: list[tuple[str, str, tuple[int, int]]], marks: Sequence[tuple[str, int]] = ()
) -> tuple[list[Usage], list[bool]]:
    """Count a request in each (bucket, key, (limit, window)) and set the marks, all in one
    cache round trip. Fails open: with the cache down nothing is counted or marked."""
    windows = [_window(f"{bucket}:{key}", rate[1]) for bucket, key, rate in buckets]
    counters = [
        (f"rl:{bucket}:{key}:{end}", rate[1] + 5)
        for (bucket, key, rate), (end, _left) in zip(buckets, windows, strict=True)
    ]
    try:
        counts, new_marks = count_and_mark(counters, marks)
    except Exception:  # noqa: BLE001 - fail open while the cache is down
        names = ", ".join(bucket for bucket, _key, _rate in buckets)
        logger.warning("rate limit cache unavailable; %s not enforced", names, exc_info=True)
        return [], [False] * len(marks)
    usages = [
        Usage(bucket=bucket, limit=rate[0], window=rate[1], count=count, reset_in=left)
        for (bucket, _key, rate), (_end, left), count in zip(buckets, windows, counts, strict=True)
    ]
    return usages, new_marks


def hit_account(
    account: Account, buckets: list[str], marks: Sequence[tuple[str, int]] = ()
) -> tuple[list[Usage], list[bool]]:
    return _hit(
        [(bucket, f"account:{account.pk}", account_rate(account, bucket)) for bucket in buckets],
        marks,
    )


def hit_anonymous(request: HttpRequest) -> Usage | None:
    usages, _ = _hit(
        [("anonymous", f"ip:{client_address(request)}", settings.MIFUMO_RATE_ANONYMOUS)]
    )
    return usages[0] if usages else None


def tightest(usages: list[Usage]) -> Usage | None:
    """The bucket to report: an exceeded one first, else the one with least headroom."""
    if not usages:
        return None
    return min(usages, key=lambda u: (not u.exceeded, u.remaining))
