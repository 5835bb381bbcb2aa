"""The Celery application. Queues: dispatch (sending), receipts, webhooks, default.

Workers can take every queue (``dev.py run``) or groups of them with their own concurrency,
so that a slow webhook receiver never holds up sending (``docker-compose.yml``):
``--queues dispatch,default``, ``--queues receipts`` and ``--queues webhooks``. Run exactly
one beat. Queue routes and the beat schedule are settings (CELERY_TASK_ROUTES,
CELERY_BEAT_SCHEDULE).
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging, task_failure

from mifumo.logging import keep_django_logging, log_task_failure

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
)
app.autodiscover_tasks()

setup_logging.connect(keep_django_logging, weak=False, dispatch_uid="mifumo.logging")
task_failure.connect(log_task_failure, weak=False, dispatch_uid="mifumo.task_failure_log")
