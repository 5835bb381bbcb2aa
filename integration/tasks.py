from __future__ import annotations

from celery import shared_task
from django.conf import settings

from integration.idempotency import purge_expired
from integration.models import ApiRequestLog
from mifumo.db import delete_older_than


@shared_task
def purge_idempotency_records() -> int:
    return purge_expired()


@shared_task
def purge_usage_log() -> int:
    """The per-request usage log past MIFUMO_USAGE_LOG_RETENTION_DAYS (daily, on beat)."""
    return delete_older_than(ApiRequestLog, settings.MIFUMO_USAGE_LOG_RETENTION_DAYS)
