"""What the dashboard does when the balance falls below an account's alert threshold:
note it in the activity log (in the moving transaction) and mail the owners and admins
once that transaction commits."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import transaction

from dashboard.tasks import send_low_balance_alert
from integration.audit import Action, audit_record
from integration.signals import LowBalance

logger = logging.getLogger(__name__)


def _queue_mail(alert: LowBalance) -> None:
    try:
        send_low_balance_alert.delay(
            alert.account_id, str(alert.balance), str(alert.threshold), alert.currency
        )
    except Exception:  # noqa: BLE001 - the alert is in the activity log and the webhook
        logger.warning(
            "could not queue the low-balance e-mail of %s", alert.account_id, exc_info=True
        )


def on_balance_fell_below_threshold(sender: Any, *, alert: LowBalance, **kwargs: Any) -> None:
    audit_record(
        account=alert.account_id,
        actor=None,
        action=Action.BALANCE_LOW,
        target=f"{alert.balance:.2f} {alert.currency}",
        details={"balance": alert.balance, "threshold": alert.threshold},
    )
    transaction.on_commit(partial(_queue_mail, alert), robust=True)
