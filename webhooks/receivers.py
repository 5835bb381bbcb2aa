"""Where other apps' changes become webhook events, inside the transaction that made them.

- ``sms.signals.recipients_status_changed_batch``: recipients of messages became sent,
  delivered or failed. Sent by ``sms.signals.send_status_changes`` from ``sms.dispatch``
  (carrier submissions, expiry sweeps) and ``sms.receipts`` (delivery receipts); a
  single group sent as ``sms.signals.recipients_status_changed`` reaches here as a batch of
  one. Recorded by ``webhooks.outbox.event_record_status_changes``.
- ``integration.signals.balance_fell_below_threshold``: a debit took the balance below the
  account's alert threshold. Sent by ``integration.services``. Recorded by
  ``webhooks.outbox.event_record_low_balance``.

``WebhooksConfig.ready`` connects both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from integration.signals import LowBalance
from sms.signals import StatusChange
from webhooks.outbox import event_record_low_balance, event_record_status_changes


def on_recipients_status_changed(
    sender: Any, *, changes: Sequence[StatusChange], **kwargs: Any
) -> None:
    event_record_status_changes(changes=changes)


def on_balance_fell_below_threshold(sender: Any, *, alert: LowBalance, **kwargs: Any) -> None:
    event_record_low_balance(alert=alert)
