"""The per-account cache version (``mifumo.local_cache``): what API requests read with
their rate limits to know that the key, account and approved sender IDs a process keeps are
still current.

Every save or delete of an account or API key bumps it, whichever path made the change
(services, the admin's forms and actions, management commands), inside the transaction and
again when it commits, before the response of the change goes out. Writes that bypass the
models (``QuerySet.update``, raw SQL) do not: the balance is one (never read from a cached
account) and so is a key's last-use time (not read from one either).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from integration.models import Account, ApiKey
from mifumo import local_cache


def account_version(account_id: int) -> str:
    return f"account:{account_id}"


def bump_account(account_id: int) -> None:
    local_cache.bump_now_and_on_commit([account_version(account_id)])


def _account_changed(sender: type[Account], instance: Account, **_: Any) -> None:
    bump_account(instance.pk)


def _key_changed(sender: type[ApiKey], instance: ApiKey, **_: Any) -> None:
    bump_account(instance.account_id)


def connect() -> None:
    for signal, name in ((post_save, "saved"), (post_delete, "deleted")):
        signal.connect(_account_changed, sender=Account, dispatch_uid=f"versions.account.{name}")
        signal.connect(_key_changed, sender=ApiKey, dispatch_uid=f"versions.key.{name}")
