from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import CommandError

from integration.models import Account


def find_account(ref: str) -> Account:
    """An account by name, or by numeric id."""
    account = Account.objects.filter(name=ref).first()
    if account is None and ref.isdigit():
        account = Account.objects.filter(pk=int(ref)).first()
    if account is None:
        raise CommandError(f"No account named or numbered {ref!r}")
    return account


def parse_amount(raw: str, *, allow_zero: bool = False, allow_negative: bool = False) -> Decimal:
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise CommandError(
            f"{raw!r} is not an amount; use a number such as 5000 or 12.50"
        ) from None
    if not amount.is_finite():
        raise CommandError(f"{raw!r} is not a finite amount")
    if amount != amount.quantize(Decimal("0.01")):
        raise CommandError(f"{raw!r} has more than two decimal places")
    if amount < 0 and not allow_negative:
        raise CommandError("The amount must not be negative")
    if amount == 0 and not allow_zero:
        raise CommandError("The amount must be greater than zero")
    if abs(amount) >= Decimal("1e12"):
        raise CommandError("The amount is too large")
    return amount
