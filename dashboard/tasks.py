"""The dashboard's background work: the activity log's retention (daily, by beat) and the
low-balance alert e-mail."""

from __future__ import annotations

from decimal import Decimal

from celery import shared_task
from django.conf import settings

from dashboard.emails import low_balance_alert_send
from integration.models import AuditEvent
from mifumo.db import delete_older_than


@shared_task
def purge_activity_log() -> int:
    """Activity log entries past MIFUMO_ACTIVITY_LOG_RETENTION_DAYS."""
    return delete_older_than(AuditEvent, settings.MIFUMO_ACTIVITY_LOG_RETENTION_DAYS)


# SMTP errors are OSErrors: a mail server that is down is tried again later.
@shared_task(autoretry_for=(OSError,), retry_backoff=60, max_retries=5)
def send_low_balance_alert(account_id: int, balance: str, threshold: str, currency: str) -> int:
    return low_balance_alert_send(
        account_id=account_id,
        balance=Decimal(balance),
        threshold=Decimal(threshold),
        currency=currency,
    )
