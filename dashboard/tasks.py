from __future__ import annotations

from decimal import Decimal

from celery import shared_task

from dashboard.emails import low_balance_alert_send


# SMTP errors are OSErrors: a mail server that is down is tried again later.
@shared_task(autoretry_for=(OSError,), retry_backoff=60, max_retries=5)
def send_low_balance_alert(account_id: int, balance: str, threshold: str, currency: str) -> int:
    return low_balance_alert_send(
        account_id=account_id,
        balance=Decimal(balance),
        threshold=Decimal(threshold),
        currency=currency,
    )
