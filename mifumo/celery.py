"""The Celery application. Queues: dispatch (sending), receipts, webhooks, default."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")

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
        "deliver-due-webhooks": {"task": "webhooks.tasks.deliver_due", "schedule": 10.0},
        "purge-idempotency-records": {
            "task": "integration.tasks.purge_idempotency_records",
            "schedule": 3600.0,
        },
    },
)
app.autodiscover_tasks()
