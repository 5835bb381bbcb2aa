"""The activity log's retention, run daily by beat."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from dashboard.models import AuditEvent
from mifumo.db import delete_older_than


@shared_task
def purge_activity_log() -> int:
    """Activity log entries past MIFUMO_ACTIVITY_LOG_RETENTION_DAYS."""
    return delete_older_than(AuditEvent, settings.MIFUMO_ACTIVITY_LOG_RETENTION_DAYS)
