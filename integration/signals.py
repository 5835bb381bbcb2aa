"""Signals the integration app sends; receivers run inside the sender's transaction."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from django.dispatch import Signal


class LowBalance(NamedTuple):
    """A movement that took an account's balance below its alert threshold."""

    account_id: int
    balance: Decimal
    threshold: Decimal
    currency: str


# A movement took an account's balance from at or above its low-balance threshold to below
# it. Sent inside the transaction that moved the money, so an outbox row written by a
# receiver commits or rolls back with the movement. Receivers: webhooks (the
# account.low_balance event) and dashboard (the activity log, and mail to owners and admins).
# kwargs: alert: LowBalance
balance_fell_below_threshold = Signal()

# A ledger row was written (with the balance change, in one statement that bypasses
# ``Model.save()``). Sent inside the movement's transaction. Receiver: metrics.
# kwargs: entry: LedgerEntry
ledger_entry_recorded = Signal()
