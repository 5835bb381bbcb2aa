"""Bearer API key authentication."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from integration import keys
from integration.models import Account, ApiKey
from mifumo.errors import DomainError, ErrorCode

LAST_USED_EVERY_SECONDS = 60


@dataclass(frozen=True)
class ApiPrincipal:
    """What ``request.user`` is for API requests: the key and its account."""

    api_key: ApiKey

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
    api_key = ApiKey.from_db(connection.alias, key_names, row[:split])
    api_key.account = Account.from_db(connection.alias, account_names, row[split:])
    return api_key


def authenticate_key(raw: str) -> ApiKey:
    """Resolve a raw key to an active key; raises InvalidCredentials saying why not."""
    if not keys.is_well_formed(raw):
        raise InvalidCredentials("Malformed API key: expected mif_live_… or mif_test_…")
    candidate = _key_by_prefix(keys.lookup_prefix(raw))
    # Compare even when nothing matched, so timing does not tell whether a prefix exists.
    stored = candidate.digest if candidate else "0" * 64
    if not keys.matches(raw, stored) or candidate is None:
        raise InvalidCredentials("The provided API key is invalid")
    if candidate.revoked_at is not None:
        raise InvalidCredentials("The provided API key has been revoked")
    if candidate.expires_at is not None and candidate.expires_at <= timezone.now():
        raise InvalidCredentials("The provided API key has expired")
    if not candidate.account.is_active:
        raise DomainError(ErrorCode.PERMISSION_DENIED, "This account is suspended")
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
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="mifumo"'
