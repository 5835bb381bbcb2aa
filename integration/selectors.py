from __future__ import annotations

from integration.models import Account


def account_balance(*, account_id: int) -> Account:
    return Account.objects.only("balance", "currency", "balance_updated_at").get(pk=account_id)
