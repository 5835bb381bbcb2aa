"""Bearer API key authentication.

Each process keeps the keys it authenticated, with their accounts (``KEYS``), so that a
request with a known key makes no database round trip before the view's own work. The
secret is checked against the kept digest on every request. An entry is used only while
the account's cache version (``integration.versions``), read by the view in its rate-limit
round trip to Redis, is the one read before the entry was loaded; otherwise the view
reloads the key in the same request (``confirm``). A refusal (revoked, expired, suspended)
is always confirmed from the database. Kept instances leave out what the request path must
not take from a cache: the balance (deferred, so reading it queries the database) and the
key's encrypted copy and last-use time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from integration import keys
from integration.models import Account, ApiKey
from integration.versions import account_version
from mifumo import local_cache
from mifumo.db import from_row
from mifumo.errors import DomainError, ErrorCode

LAST_USED_EVERY_SECONDS = 60
CACHE_MAX_KEYS = 10_000
CACHE_MAX_AGE = 60.0
# Fields a kept instance leaves deferred: read, they come from the database.
_KEY_UNCACHED = frozenset({"encrypted_key", "last_used_at"})
_ACCOUNT_UNCACHED = frozenset({"balance", "balance_updated_at"})


@dataclass(frozen=True)
class _Row:
    """A kept key: its field values and its account's, in ``_kept_names()`` order."""

    key: tuple[Any, ...]
    account: tuple[Any, ...]


# Keyed by lookup prefix.
KEYS: local_cache.VersionedCache[str, _Row] = local_cache.VersionedCache(
    max_entries=CACHE_MAX_KEYS, max_age=CACHE_MAX_AGE
)


@dataclass(frozen=True)
class ApiPrincipal:
    """What ``request.user`` is for API requests: the key and its account."""

    api_key: ApiKey
    # Where the key came from: the process's cache (with the version it was loaded under,
    # to be confirmed by the view) or the database in this request.
    from_cache: bool = field(default=False, compare=False)
    loaded_under: local_cache.Tag = field(default=local_cache.UNVERIFIED, compare=False)

    @property
    def account(self) -> Account:
        return self.api_key.account

    @property
    def test_only(self) -> bool:
        """A test key manages test keys only and sees only test traffic: messages, reports,
        webhook endpoints and deliveries. Contacts, segments, sender IDs and the balance are
        the account's, the same in both modes."""
        return self.api_key.is_test

    is_authenticated = True
    is_anonymous = False


def api_principal(request: Request) -> ApiPrincipal:
    """The caller of an API view, after authentication."""
    assert isinstance(request.user, ApiPrincipal)
    return request.user


class InvalidCredentials(AuthenticationFailed):
    def __init__(self, reason: str) -> None:
        super().__init__(detail=reason)


def last_used_mark(api_key: ApiKey) -> tuple[str, int]:
    """The cache mark whose creation says it is time to record the key's last use: at most
    one write per key a minute, whichever process gets there first."""
    return f"apikey-used:{api_key.pk}", LAST_USED_EVERY_SECONDS


def record_last_used(api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())


def _columns(model: type[ApiKey] | type[Account], alias: str) -> tuple[list[str], str]:
    fields = model._meta.concrete_fields
    columns = ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in fields)
    return [f.attname for f in fields], columns


@functools.cache
def _key_query() -> tuple[str, list[str], list[str]]:
    key_names, key_columns = _columns(ApiKey, "k")
    account_names, account_columns = _columns(Account, "a")
    sql = (
        f"SELECT {key_columns}, {account_columns} "  # noqa: S608 - names from the models
        f"FROM {ApiKey._meta.db_table} k JOIN {Account._meta.db_table} a "
        "ON a.id = k.account_id WHERE k.prefix = %s"
    )
    return sql, key_names, account_names


def _key_by_prefix(prefix: str) -> ApiKey | None:
    """The key with this prefix and its account, in one query.

    Every API request runs this. The statement is written out once per process and the row
    becomes model instances directly: building the ORM query each time cost more than
    running it. The driver returns the fields' Python types, so nothing needs converting."""
    sql, key_names, account_names = _key_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(key_names)
    api_key = from_row(ApiKey, key_names, row[:split])
    api_key.account = from_row(Account, account_names, row[split:])
    return api_key


@functools.cache
def _kept_names() -> tuple[list[str], list[str]]:
    key_names, _ = _columns(ApiKey, "k")
    account_names, _ = _columns(Account, "a")
    return (
        [name for name in key_names if name not in _KEY_UNCACHED],
        [name for name in account_names if name not in _ACCOUNT_UNCACHED],
    )


def _keep(api_key: ApiKey, version: local_cache.Tag) -> None:
    key_names, account_names = _kept_names()
    row = _Row(
        key=tuple(getattr(api_key, name) for name in key_names),
        account=tuple(getattr(api_key.account, name) for name in account_names),
    )
    KEYS.put(api_key.prefix, row, version)


def _kept(row: _Row) -> ApiKey:
    """New instances from a kept row: a request never shares objects with another."""
    key_names, account_names = _kept_names()
    api_key = from_row(ApiKey, key_names, row.key)
    api_key.account = from_row(Account, account_names, row.account)
    return api_key


def _check_state(api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is not None:
        raise InvalidCredentials("The provided API key has been revoked")
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        raise InvalidCredentials("The provided API key has expired")
    if not api_key.account.is_active:
        raise DomainError(ErrorCode.PERMISSION_DENIED, "This account is suspended")
    return api_key


def _check_secret(raw: str, candidate: ApiKey | None) -> ApiKey:
    # Compare even when nothing matched, so timing does not tell whether a prefix exists.
    stored = candidate.digest if candidate else "0" * 64
    if not keys.matches(raw, stored) or candidate is None:
        raise InvalidCredentials("The provided API key is invalid")
    return candidate


def _check_form(raw: str) -> None:
    if not keys.is_well_formed(raw):
        raise InvalidCredentials("Malformed API key: expected mif_live_… or mif_test_…")


def authenticate_key(raw: str) -> ApiKey:
    """Resolve a raw key to an active key from the database; raises InvalidCredentials
    saying why not."""
    _check_form(raw)
    return _check_state(_check_secret(raw, _key_by_prefix(keys.lookup_prefix(raw))))


def authenticate(raw: str) -> ApiPrincipal:
    """``authenticate_key`` through the process's cache: the principal says whether its key
    came from there, for the view to ``confirm`` once it has read the versions."""
    _check_form(raw)
    prefix = keys.lookup_prefix(raw)
    entry = KEYS.get(prefix)
    if entry is not None:
        api_key = _check_secret(raw, _kept(entry.value))
        try:
            return ApiPrincipal(_check_state(api_key), from_cache=True, loaded_under=entry.version)
        except (InvalidCredentials, DomainError):
            KEYS.discard(prefix)  # a refusal is the database's word, never the cache's
    api_key = authenticate_key(raw)
    # No version was read before this load: the entry is confirmed (reloaded under a
    # version) by the next request that uses it.
    _keep(api_key, local_cache.UNVERIFIED)
    return ApiPrincipal(api_key)


def cache_versions(principal: ApiPrincipal) -> list[str]:
    """The versions an API request reads: its account's, and those every request reads."""
    return [account_version(principal.api_key.account_id), *local_cache.request_versions()]


def is_confirmed(
    principal: ApiPrincipal, versions: Mapping[str, local_cache.Version] | None
) -> bool:
    """Whether ``confirm`` would give the principal back as it is, without a reload."""
    if not principal.from_cache:
        return True
    name = account_version(principal.api_key.account_id)
    return (
        versions is not None
        and name in versions
        and local_cache.is_current(principal.loaded_under, versions[name])
    )


def confirm(
    principal: ApiPrincipal, versions: Mapping[str, local_cache.Version] | None
) -> ApiPrincipal:
    """The principal itself when it is current: loaded from the database in this request,
    or kept under the account version just read (``versions``; None when Redis could not
    be read, and then nothing kept is trusted). Otherwise the key reloaded from the
    database and checked again, kept under the version read. Raises as authentication
    does."""
    if is_confirmed(principal, versions):
        return principal
    name = account_version(principal.api_key.account_id)
    tag: local_cache.Tag = local_cache.UNVERIFIED
    if versions is not None and name in versions:
        tag = versions[name]
    kept = principal.api_key
    fresh = _key_by_prefix(kept.prefix)
    if fresh is None or fresh.pk != kept.pk or fresh.digest != kept.digest:
        KEYS.discard(kept.prefix)
        raise InvalidCredentials("The provided API key is invalid")
    _keep(fresh, tag)
    return ApiPrincipal(_check_state(fresh))


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "").strip()
        if not header:
            raise InvalidCredentials("Missing Authorization header: use 'Bearer <API key>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidCredentials("Malformed Authorization header: use 'Bearer <API key>'")
        principal = authenticate(token.strip())
        return principal, principal.api_key

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="mifumo"'
