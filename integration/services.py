"""Writes for accounts, keys and money. Every balance movement writes a ledger row in the
same transaction as the balance change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from integration import keys
from integration.audit import Action, AuditContext
from integration.models import Account, ApiKey, LedgerEntry, Permission
from integration.signals import LowBalance, balance_fell_below_threshold, ledger_entry_recorded
from mifumo.db import atomic_unless_nested
from mifumo.errors import DomainError, ErrorCode

CENT = Decimal("0.01")


class InsufficientBalance(DomainError):
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
    return _move_entry(entry, require_cover=require_cover)


def _move_entry(entry: LedgerEntry, *, require_cover: bool) -> LedgerEntry:
    with atomic_unless_nested():
        if not _move_balance(entry, require_cover=require_cover):
            account = Account.objects.only("balance", "currency").get(pk=entry.account_id)
            raise InsufficientBalance(
                cost=-entry.amount, balance=account.balance, currency=account.currency
            )
    return entry


def _move_balance(entry: LedgerEntry, *, require_cover: bool) -> bool:
    """The balance change and its ledger row in ONE statement.

    Every send of an account meets at its balance row, locked from this statement to the
    end of the commit, so senders run it last in their transaction and it costs one round
    trip."""
    ctes, params = movement_ctes(entry, require_cover=require_cover)
    sql = (
        f"WITH {ctes} "  # noqa: S608 - table names from the models
        "SELECT entry.id, entry.balance_after, moved.low_balance_threshold, moved.currency "
        "FROM entry, moved"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    movement_recorded(entry, row)
    return True


def debit_entry(*, account_id: int, amount: Decimal, reference: str, note: str) -> LedgerEntry:
    """The ledger row ``account_debit`` writes, not yet stored."""
    return LedgerEntry(
        account_id=account_id,
        kind=LedgerEntry.Kind.DEBIT,
        amount=-_positive(amount),
        reference=reference,
        note=note,
        created_by=None,
        created_at=timezone.now(),
    )


def movement_ctes(
    entry: LedgerEntry, *, require_cover: bool, only_if: str = "", alert_free: bool = False
) -> tuple[str, list[Any]]:
    """Two data-modifying CTEs, ``moved`` (the balance row after the change: id, balance,
    low_balance_threshold, currency) and ``entry`` (the ledger row: id, balance_after), with
    their parameters, for a statement that ends with ``movement_recorded``.

    ``only_if``: SQL that must hold as well (over the statement's other CTEs).
    ``alert_free``: move only when the movement crosses no low-balance threshold; the alert's
    receivers write in the movement's transaction, which a statement in autocommit has
    already ended."""
    account_table = Account._meta.db_table
    ledger_table = LedgerEntry._meta.db_table
    params: list[Any] = [entry.amount, entry.created_at, entry.account_id]
    conditions = ""
    if require_cover:
        conditions += " AND balance >= %s"
        params.append(-entry.amount)
    if only_if:
        conditions += f" AND {only_if}"
    if alert_free:
        conditions += (
            " AND (low_balance_threshold IS NULL OR balance < low_balance_threshold"
            " OR balance + %s >= low_balance_threshold)"
        )
        params.append(entry.amount)
    sql = (
        f"moved AS (UPDATE {account_table} "  # noqa: S608 - table names from the models
        "SET balance = balance + %s, balance_updated_at = %s "
        f"WHERE id = %s{conditions} "
        "RETURNING id, balance, low_balance_threshold, currency), "
        f"entry AS (INSERT INTO {ledger_table} (account_id, kind, amount, balance_after, "
        "reference, note, created_by_id, created_at) "
        "SELECT id, %s, %s, balance, %s, %s, %s, %s "
        "FROM moved RETURNING id, balance_after)"
    )
    params += [
        entry.kind,
        entry.amount,
        entry.reference,
        entry.note,
        entry.created_by_id,
        entry.created_at,
    ]
    return sql, params


def movement_recorded(entry: LedgerEntry, row: Sequence[Any]) -> None:
    """What follows a movement's statement: ``entry`` gets its stored fields from ``row``
    (the ledger row's id and balance after, the account's threshold and currency), and the
    receivers of the movement hear of it."""
    entry.pk, entry.balance_after = row[0], Decimal(row[1])
    entry._state.adding = False
    entry._state.db = connection.alias
    ledger_entry_recorded.send(sender=LedgerEntry, entry=entry)
    _alert_if_low(entry, threshold=row[2], currency=row[3])


def _alert_if_low(entry: LedgerEntry, *, threshold: Decimal | None, currency: str) -> None:
    """Signal a movement that crossed the account's threshold downwards, once until a top-up
    or an adjustment lifts the balance back to it (a refund does not: a send refunded and
    sent again near the threshold would alert each time). The balance row is locked until
    commit, so the balance before is exactly ``balance_after - amount``."""
    if threshold is None:
        return
    accounts = Account.objects.filter(pk=entry.account_id)
    if entry.amount >= 0:
        lifts = entry.kind in (LedgerEntry.Kind.TOP_UP, LedgerEntry.Kind.ADJUSTMENT)
        if lifts and entry.balance_after >= threshold:
            accounts.filter(low_balance_alerted=True).update(low_balance_alerted=False)
        return
    before = entry.balance_after - entry.amount
    if entry.balance_after < threshold <= before:
        if not accounts.filter(low_balance_alerted=False).update(low_balance_alerted=True):
            return  # alerted already, and not topped up since
        alert = LowBalance(entry.account_id, entry.balance_after, Decimal(threshold), currency)
        balance_fell_below_threshold.send(sender=LedgerEntry, alert=alert)


def _positive(amount: Decimal | int | str) -> Decimal:
    value = _money(amount)
    if value <= 0:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR, "Amount must be positive", {"amount": [str(amount)]}
        )
    return value


def _record_movement(
    entry: LedgerEntry, *, account: Account, action: str, audit: AuditContext | None
) -> None:
    if audit is not None:
        audit.record(
            account=account,
            action=action,
            target=account.name,
            details={
                "amount": entry.amount,
                "balance_after": entry.balance_after,
                "note": entry.note,
                "reference": entry.reference,
                "ledger_entry": entry.pk,
            },
        )


def account_top_up(
    *,
    account: Account,
    amount: Decimal | int | str,
    reference: str = "",
    note: str = "",
    created_by: User | None = None,
    audit: AuditContext | None = None,
) -> LedgerEntry:
    with transaction.atomic():
        entry = _move(
            account_id=account.pk,
            amount=_positive(amount),
            kind=LedgerEntry.Kind.TOP_UP,
            reference=reference,
            note=note,
            created_by=created_by,
            require_cover=False,
        )
        _record_movement(entry, account=account, action=Action.ACCOUNT_TOPPED_UP, audit=audit)
    return entry


def account_debit(
    *, account_id: int, amount: Decimal, reference: str, note: str = ""
) -> LedgerEntry:
    """Take ``amount`` only if the balance covers it; raises InsufficientBalance otherwise."""
    entry = debit_entry(account_id=account_id, amount=amount, reference=reference, note=note)
    return _move_entry(entry, require_cover=True)


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
    audit: AuditContext | None = None,
) -> LedgerEntry:
    """An operator's correction, positive or negative; never below zero."""
    value = _money(amount)
    if value == 0:
        raise DomainError(ErrorCode.VALIDATION_ERROR, "Amount must not be zero", {"amount": ["0"]})
    with transaction.atomic():
        entry = _move(
            account_id=account.pk,
            amount=value,
            kind=LedgerEntry.Kind.ADJUSTMENT,
            reference="",
            note=note,
            created_by=created_by,
            require_cover=value < 0,
        )
        _record_movement(entry, account=account, action=Action.ACCOUNT_ADJUSTED, audit=audit)
    return entry


@transaction.atomic
def account_set_status(*, account: Account, status: str, audit: AuditContext | None = None) -> bool:
    """Suspend or activate the account; False when it already had that status."""
    if account.status == status:
        return False
    account.status = Account.Status(status)
    account.save(update_fields=["status", "updated_at"])
    if audit is not None:
        audit_status_changed(account=account, audit=audit)
    return True


def audit_status_changed(*, account: Account, audit: AuditContext) -> None:
    """The activity-log entry of a status change, also for one saved by an admin form."""
    audit.record(
        account=account,
        action=Action.ACCOUNT_ACTIVATED if account.is_active else Action.ACCOUNT_SUSPENDED,
        target=account.name,
    )


@transaction.atomic
def account_set_limits(
    *, account: Account, limits: dict[str, int | None], audit: AuditContext | None = None
) -> Account:
    """Override the account's rate and length limits (None: the platform default)."""
    for field_name, value in limits.items():
        setattr(account, field_name, value)
    account.save(update_fields=[*limits, "updated_at"])
    if audit is not None:
        audit.record(
            account=account,
            action=Action.ACCOUNT_LIMITS_CHANGED,
            target=account.name,
            details=limits,
        )
    return account


@transaction.atomic
def account_set_low_balance_threshold(
    *, account: Account, threshold: Decimal | int | str | None, audit: AuditContext | None = None
) -> Account:
    """Alert when a debit takes the balance below ``threshold``; None turns the alert off."""
    value = None if threshold is None else _money(threshold)
    if value is not None and value <= 0:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            "The threshold must be positive",
            {"threshold": ["Must be greater than zero; leave it empty to turn the alert off"]},
        )
    account.low_balance_threshold = value
    account.low_balance_alerted = False  # a new threshold: its first crossing alerts
    account.save(update_fields=["low_balance_threshold", "low_balance_alerted", "updated_at"])
    if audit is not None:
        audit.record(
            account=account,
            action=Action.LOW_BALANCE_THRESHOLD_SET,
            target=f"{value:.2f} {account.currency}" if value is not None else "off",
            details={"threshold": value},
        )
    return account


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


def _key_details(api_key: ApiKey) -> dict[str, object]:
    return {
        "prefix": api_key.prefix,
        "permission": api_key.permission,
        "test": api_key.is_test,
        "expires_at": api_key.expires_at,
    }


@transaction.atomic
def api_key_create(
    *,
    account: Account,
    name: str,
    permission: str = Permission.WRITE,
    test: bool = False,
    expires_at: datetime | None = None,
    created_by: User | None = None,
    audit: AuditContext | None = None,
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
    if audit is not None:
        audit.record(
            account=account,
            action=Action.API_KEY_CREATED,
            target=api_key,
            details=_key_details(api_key),
        )
    return IssuedKey(api_key=api_key, raw=raw)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, audit: AuditContext | None = None) -> ApiKey:
    """Stop the key at once and forget its encrypted copy: webhooks of the messages it sent
    go out without an Authorization header from now on."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.encrypted_key = ""
        api_key.save(update_fields=["revoked_at", "encrypted_key"])
    if audit is not None:
        audit.record(
            account=api_key.account_id,
            action=Action.API_KEY_REVOKED,
            target=api_key,
            details=_key_details(api_key),
        )
    return api_key


@transaction.atomic
def api_key_rotate(
    *, api_key: ApiKey, created_by: User | None = None, audit: AuditContext | None = None
) -> IssuedKey:
    """A new key in place of this one: a new record with the same name, permission, mode and
    expiry. The old key is revoked (its secret stops working at once) and points to its
    replacement.

    A new record, not a new secret on the old one: messages sent with the old key keep
    pointing at the old record, so their webhooks can never carry the new key."""
    old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if old.revoked_at is not None:
        raise DomainError(ErrorCode.CONFLICT, "A revoked key cannot be rotated")
    if old.status == "expired":
        raise DomainError(ErrorCode.CONFLICT, "An expired key cannot be rotated; create a new one")
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
    if audit is not None:
        audit.record(
            account=old.account_id,
            action=Action.API_KEY_ROTATED,
            target=issued.api_key,
            details={**_key_details(issued.api_key), "previous_prefix": old.prefix},
        )
    return issued
