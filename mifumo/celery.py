"""The Celery application. Queues: dispatch (sending), receipts, webhooks, default.

Workers can take every queue (``dev.py run``) or groups of them with their own concurrency,
so that a slow webhook receiver never holds up sending (``docker-compose.yml``):
``--queues dispatch,default``, ``--queues receipts`` and ``--queues webhooks``. Run exactly
one beat.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging, task_failure

from mifumo.logging import keep_django_logging, log_task_failure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")

RETENTION_EVERY = float(os.environ.get("MIFUMO_RETENTION_EVERY_SECONDS", 24 * 3600))

app = Celery("mifumo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    task_default_queue="default",
    task_routes={
        "sms.tasks.dispatch_message": {"queue": "dispatch"},
        "sms.tasks.ingest_receipts": {"queue": "receipts"},
        "sms.tasks.apply_unmatched_receipts": {"queue": "receipts"},
        "webhooks.tasks.*": {"queue": "webhooks"},
    },
    beat_schedule={
        "dispatch-due-messages": {
            "task": "sms.tasks.dispatch_due",
            "schedule": float(os.environ.get("MIFUMO_DUE_SECONDS", "2")),
        },
        "sweep-stuck-recipients": {
            "task": "sms.tasks.sweep_stuck",
            "schedule": float(os.environ.get("MIFUMO_SWEEP_SECONDS", "30")),
        },
        "apply-unmatched-receipts": {
            "task": "sms.tasks.apply_unmatched_receipts",
            "schedule": float(os.environ.get("MIFUMO_UNMATCHED_RECEIPTS_SECONDS", "30")),
        },
        "deliver-due-webhooks": {"task": "webhooks.tasks.deliver_due", "schedule": 10.0},
        "flush-stale-inbound-parts": {"task": "inbox.tasks.flush_stale_parts", "schedule": 60.0},
        "purge-idempotency-records": {
            "task": "integration.tasks.purge_idempotency_records",
            "schedule": 3600.0,
        },
        # Retention (MIFUMO_*_RETENTION_DAYS): once a day, counted from beat's first start
        # (its schedule file keeps the time across restarts).
        **{
            name: {"task": task, "schedule": RETENTION_EVERY}
            for name, task in (
                ("purge-messages", "sms.tasks.purge_messages"),
                ("purge-usage-log", "integration.tasks.purge_usage_log"),
                ("purge-activity-log", "dashboard.tasks.purge_activity_log"),
            )
        },
    },
)
app.autodiscover_tasks()

setup_logging.connect(keep_django_logging, weak=False, dispatch_uid="mifumo.logging")
task_failure.connect(log_task_failure, weak=False, dispatch_uid="mifumo.task_failure_log")
