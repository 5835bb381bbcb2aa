"""Turns recipient status changes and low balances into webhook events, inside the
transaction that made the change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from integration.signals import LowBalance
from sms.signals import StatusChange
from webhooks.services import event_record_low_balance, event_record_status_changes


def on_recipients_status_changed(
    sender: Any, *, changes: Sequence[StatusChange], **kwargs: Any
) -> None:
    event_record_status_changes(changes=changes)


def on_balance_fell_below_threshold(sender: Any, *, alert: LowBalance, **kwargs: Any) -> None:
    event_record_low_balance(alert=alert)
