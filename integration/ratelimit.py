"""Per-account rate limits over the shared Django cache (Redis in production).

Buckets: ``api`` counts every authenticated request, ``sms_send`` the send requests,
``contacts`` contact and segment operations; unauthenticated requests are counted per
client address. Fixed windows; a request's buckets are counted in one round trip to
Redis, which also reads the cache versions the request needs (``mifumo.local_cache``).
When the cache is unreachable, limits fail open (requests are served and the outage
is logged) so that a Redis outage does not stop sending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from django.conf import settings
from django.http import HttpRequest

from integration.models import Account
from mifumo import local_cache
from mifumo.client_ip import client_address
from mifumo.counters import count_mark_and_read, window_end

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


@dataclass(frozen=True)
class Hit:
    usages: list[Usage]
    marks: list[bool]  # which marks were new
    # The cache versions read, by name; None when the cache could not be read.
    versions: dict[str, local_cache.Version] | None


def _hit(
    buckets: list[tuple[str, str, tuple[int, int]]],
    marks: Sequence[tuple[str, int]] = (),
    versions: Sequence[str] = (),
) -> Hit:
    """Count a request in each (bucket, key, (limit, window)), set the marks and read the
    versions, all in one cache round trip. Fails open: with the cache down nothing is
    counted or marked (and no version is known)."""
    windows = [_window(f"{bucket}:{key}", rate[1]) for bucket, key, rate in buckets]
    counters = [
        (f"rl:{bucket}:{key}:{end}", rate[1] + 5)
        for (bucket, key, rate), (end, _left) in zip(buckets, windows, strict=True)
    ]
    try:
        reads = [local_cache.redis_key(name) for name in versions]
        counts, new_marks, values = count_mark_and_read(counters, marks, reads)
    except Exception:  # noqa: BLE001 - fail open while the cache is down
        names = ", ".join(bucket for bucket, _key, _rate in buckets)
        logger.warning("rate limit cache unavailable; %s not enforced", names, exc_info=True)
        return Hit([], [False] * len(marks), None)
    usages = [
        Usage(bucket=bucket, limit=rate[0], window=rate[1], count=count, reset_in=left)
        for (bucket, _key, rate), (_end, left), count in zip(buckets, windows, counts, strict=True)
    ]
    read = {name: local_cache.decode(value) for name, value in zip(versions, values, strict=True)}
    return Hit(usages, new_marks, read)


def hit_account(
    account: Account,
    buckets: list[str],
    marks: Sequence[tuple[str, int]] = (),
    versions: Sequence[str] = (),
) -> Hit:
    return _hit(
        [(bucket, f"account:{account.pk}", account_rate(account, bucket)) for bucket in buckets],
        marks,
        versions,
    )


def relimit(usages: list[Usage], account: Account) -> list[Usage]:
    """The same counts against the account's limits as they are now (after a reload)."""
    return [replace(u, limit=account_rate(account, u.bucket)[0]) for u in usages]


def hit_anonymous(request: HttpRequest) -> Usage | None:
    hit = _hit([("anonymous", f"ip:{client_address(request)}", settings.MIFUMO_RATE_ANONYMOUS)])
    return hit.usages[0] if hit.usages else None


def tightest(usages: list[Usage]) -> Usage | None:
    """The bucket to report: an exceeded one first, else the one with least headroom."""
    if not usages:
        return None
    return min(usages, key=lambda u: (not u.exceeded, u.remaining))
