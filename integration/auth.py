"""Bearer API key authentication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from integration import keys
from integration.models import Account, ApiKey
from mifumo.api.errors import ApiError, ErrorCode

LAST_USED_EVERY_SECONDS = 60


@dataclass(frozen=True)
class ApiPrincipal:
    """What ``request.user`` is for API requests: the key and its account."""

    api_key: ApiKey

    @property
    def account(self) -> Account:
        return self.api_key.account

    is_authenticated = True
    is_anonymous = False


class InvalidCredentials(AuthenticationFailed):
    def __init__(self, reason: str) -> None:
        super().__init__(detail=reason)


def _touch(api_key: ApiKey) -> None:
    # At most one write per key a minute, whichever process gets there first.
    try:
        first = cache.add(f"apikey-used:{api_key.pk}", 1, LAST_USED_EVERY_SECONDS)
    except Exception:  # noqa: BLE001 - the cache being down must not fail a request
        first = False
    if first:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())


def authenticate_key(raw: str) -> ApiKey:
    """Resolve a raw key to an active key; raises InvalidCredentials saying why not."""
    if not keys.is_well_formed(raw):
        raise InvalidCredentials("Malformed API key: expected mif_live_… or mif_test_…")
    candidate = (
        ApiKey.objects.select_related("account").filter(prefix=keys.lookup_prefix(raw)).first()
    )
    # Compare even when nothing matched, so timing does not tell whether a prefix exists.
    stored = candidate.digest if candidate else "0" * 64
    if not keys.matches(raw, stored) or candidate is None:
        raise InvalidCredentials("The provided API key is invalid")
    if candidate.revoked_at is not None:
        raise InvalidCredentials("The provided API key has been revoked")
    if candidate.expires_at is not None and candidate.expires_at <= timezone.now():
        raise InvalidCredentials("The provided API key has expired")
    if not candidate.account.is_active:
        raise ApiError(ErrorCode.PERMISSION_DENIED, "This account is suspended")
    return candidate


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "").strip()
        if not header:
            raise InvalidCredentials("Missing Authorization header: use 'Bearer <API key>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidCredentials("Malformed Authorization header: use 'Bearer <API key>'")
        api_key = authenticate_key(token.strip())
        _touch(api_key)
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="mifumo"'
