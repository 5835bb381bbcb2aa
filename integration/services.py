"""Writes for accounts, keys and money. Every balance movement writes a ledger row in the
same transaction as the balance change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from integration import keys
from integration.models import Account, ApiKey, LedgerEntry, Membership, Permission
from mifumo.api.errors import ApiError, ErrorCode
from mifumo.db import atomic_unless_nested

CENT = Decimal("0.01")


class InsufficientBalance(ApiError):
    def __init__(self, *, cost: Decimal, balance: Decimal, currency: str) -> None:
        super().__init__(
            ErrorCode.INSUFFICIENT_BALANCE,
            f"Account balance too low: this costs {cost:.2f} {currency}, "
            f"the balance is {balance:.2f} {currency}",
            {"cost": float(cost), "balance": float(balance), "currency": currency},
        )


def _money(amount: Decimal | int | str) -> Decimal:
    value = Decimal(str(amount)).quantize(CENT)
    return value


@transaction.atomic
def account_create(
    *,
    name: str,
    balance: Decimal | int | str = 0,
    created_by: User | None = None,
) -> Account:
    account = Account.objects.create(name=name.strip())
    opening = _money(balance)
    if opening > 0:
        account_top_up(
            account=account, amount=opening, note="opening balance", created_by=created_by
        )
        account.refresh_from_db()
    return account


def _move(
    *,
    account_id: int,
    amount: Decimal,
    kind: str,
    reference: str,
    note: str,
    created_by: User | None,
    require_cover: bool,
) -> LedgerEntry:
    """Change the balance by ``amount`` (signed) with one conditional UPDATE and append the
    ledger row. The row lock taken by the UPDATE is held until commit, so the balance read
    back is exactly this movement's result."""
    entry = LedgerEntry(
        account_id=account_id,
        kind=kind,
        amount=amount,
        reference=reference,
        note=note,
        created_by=created_by,
        created_at=timezone.now(),
    )
    with atomic_unless_nested():
        if not _move_balance(entry, require_cover=require_cover):
            account = Account.objects.only("balance", "currency").get(pk=account_id)
            raise InsufficientBalance(
                cost=-amount, balance=account.balance, currency=account.currency
            )
    return entry


def _move_balance(entry: LedgerEntry, *, require_cover: bool) -> bool:
    """The balance change and its ledger row in ONE statement.

    Every send of an account meets at its balance row, locked from this statement to the
    end of the commit, so senders run it last in their transaction and it costs one round
    trip."""
    account_table = Account._meta.db_table
    ledger_table = LedgerEntry._meta.db_table
    cover = " AND balance >= %(cover)s" if require_cover else ""
    sql = (
        f"WITH moved AS (UPDATE {account_table} "  # noqa: S608 - table names from the models
        "SET balance = balance + %(amount)s, balance_updated_at = %(now)s "
        f"WHERE id = %(account)s{cover} RETURNING id, balance) "
        f"INSERT INTO {ledger_table} (account_id, kind, amount, balance_after, reference, "
        "note, created_by_id, created_at) "
        "SELECT id, %(kind)s, %(amount)s, balance, %(reference)s, %(note)s, %(by)s, %(now)s "
        "FROM moved RETURNING id, balance_after"
    )
    params: dict[str, Decimal | datetime | int | str | None] = {
        "amount": entry.amount,
        "now": entry.created_at,
        "account": entry.account_id,
        "cover": -entry.amount,
        "kind": entry.kind,
        "reference": entry.reference,
        "note": entry.note,
        "by": entry.created_by_id,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    entry.pk, entry.balance_after = row[0], Decimal(row[1])
    entry._state.adding = False
    entry._state.db = connection.alias
    # The row was written without Model.save(); tell listeners (metrics) as save() would.
    post_save.send(
        sender=LedgerEntry,
        instance=entry,
        created=True,
        raw=False,
        using=connection.alias,
        update_fields=None,
    )
    return True


def _positive(amount: Decimal | int | str) -> Decimal:
    value = _money(amount)
    if value <= 0:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR, "Amount must be positive", {"amount": [str(amount)]}
        )
    return value


def account_top_up(
    *,
    account: Account,
    amount: Decimal | int | str,
    reference: str = "",
    note: str = "",
    created_by: User | None = None,
) -> LedgerEntry:
    return _move(
        account_id=account.pk,
        amount=_positive(amount),
        kind=LedgerEntry.Kind.TOP_UP,
        reference=reference,
        note=note,
        created_by=created_by,
        require_cover=False,
    )


def account_debit(
    *, account_id: int, amount: Decimal, reference: str, note: str = ""
) -> LedgerEntry:
    """Take ``amount`` only if the balance covers it; raises InsufficientBalance otherwise."""
    return _move(
        account_id=account_id,
        amount=-_positive(amount),
        kind=LedgerEntry.Kind.DEBIT,
        reference=reference,
        note=note,
        created_by=None,
        require_cover=True,
    )


def account_refund(
    *, account_id: int, amount: Decimal, reference: str, note: str = ""
) -> LedgerEntry:
    return _move(
        account_id=account_id,
        amount=_positive(amount),
        kind=LedgerEntry.Kind.REFUND,
        reference=reference,
        note=note,
        created_by=None,
        require_cover=False,
    )


def account_adjust(
    *,
    account: Account,
    amount: Decimal | int | str,
    note: str,
    created_by: User | None = None,
) -> LedgerEntry:
    """An operator's correction, positive or negative; never below zero."""
    value = _money(amount)
    if value == 0:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "Amount must not be zero", {"amount": ["0"]})
    return _move(
        account_id=account.pk,
        amount=value,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        reference="",
        note=note,
        created_by=created_by,
        require_cover=value < 0,
    )


def membership_add(*, user: User, account: Account, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        user=user, account=account, defaults={"role": role}
    )
    return membership


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw: str  # shown once, never stored


def _key_material(*, test: bool) -> tuple[str, dict[str, str]]:
    raw = keys.generate(test=test)
    return raw, {
        "prefix": keys.lookup_prefix(raw),
        "digest": keys.digest(raw),
        "encrypted_key": keys.encrypt(raw),
    }


def api_key_create(
    *,
    account: Account,
    name: str,
    permission: str = Permission.WRITE,
    test: bool = False,
    expires_at: datetime | None = None,
    created_by: User | None = None,
) -> IssuedKey:
    raw, material = _key_material(test=test)
    api_key = ApiKey.objects.create(
        account=account,
        name=name,
        permission=Permission(permission),
        is_test=test,
        expires_at=expires_at,
        created_by=created_by,
        **material,
    )
    return IssuedKey(api_key=api_key, raw=raw)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Stop the key at once and forget its encrypted copy: webhooks of the messages it sent
    go out without an Authorization header from now on."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.encrypted_key = ""
        api_key.save(update_fields=["revoked_at", "encrypted_key"])
    return api_key


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey, created_by: User | None = None) -> IssuedKey:
    """A new key in place of this one: a new record with the same name, permission, mode and
    expiry. The old key is revoked (its secret stops working at once) and points to its
    replacement.

    A new record, not a new secret on the old one: messages sent with the old key keep
    pointing at the old record, so their webhooks can never carry the new key."""
    old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if old.revoked_at is not None:
        raise ApiError(ErrorCode.CONFLICT, "A revoked key cannot be rotated")
    if old.status == "expired":
        raise ApiError(ErrorCode.CONFLICT, "An expired key cannot be rotated; create a new one")
    issued = api_key_create(
        account=api_key.account,
        name=old.name,
        permission=old.permission,
        test=old.is_test,
        expires_at=old.expires_at,
        created_by=created_by or old.created_by,
    )
    now = timezone.now()
    old.revoked_at = old.rotated_at = now
    old.encrypted_key = ""
    old.replaced_by = issued.api_key
    old.save(update_fields=["revoked_at", "rotated_at", "encrypted_key", "replaced_by"])
    api_key.refresh_from_db()
    return issued
