"""Per-account rate limits over the shared Django cache (Redis in production).

Buckets: ``api`` counts every authenticated request, ``sms_send`` the send requests,
``contacts`` contact and segment operations; unauthenticated requests are counted per
client address. When the cache is unreachable, limits fail open (requests are served and
the outage is logged) so that a Redis outage does not stop sending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

from integration.models import Account

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


def client_address(request: HttpRequest) -> str:
    if settings.MIFUMO_TRUST_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return str(request.META.get("REMOTE_ADDR", "unknown"))


def _hit(request: HttpRequest, *, bucket: str, key: str, rate: tuple[int, int]) -> Usage | None:
    try:
        usage = get_usage(
            request,
            group=f"mifumo.{bucket}",
            key=lambda _group, _request: key,
            rate=rate,
            increment=True,
        )
    except Exception:  # noqa: BLE001 - fail open while the cache is down
        logger.warning("rate limit cache unavailable; %s not enforced", bucket, exc_info=True)
        return None
    if usage is None:
        return None
    return Usage(
        bucket=bucket,
        limit=rate[0],
        window=rate[1],
        count=int(usage["count"]),
        reset_in=max(int(usage["time_left"]), 0),
    )


def hit_account(request: HttpRequest, account: Account, bucket: str) -> Usage | None:
    return _hit(
        request, bucket=bucket, key=f"account:{account.pk}", rate=account_rate(account, bucket)
    )


def hit_anonymous(request: HttpRequest) -> Usage | None:
    return _hit(
        request,
        bucket="anonymous",
        key=f"ip:{client_address(request)}",
        rate=settings.MIFUMO_RATE_ANONYMOUS,
    )


def tightest(usages: list[Usage]) -> Usage | None:
    """The bucket to report: an exceeded one first, else the one with least headroom."""
    if not usages:
        return None
    return min(usages, key=lambda u: (not u.exceeded, u.remaining))
