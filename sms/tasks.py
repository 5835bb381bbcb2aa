"""Celery tasks: thin wrappers over the dispatch and receipt services."""

from __future__ import annotations

import io
import logging
from typing import Any

from celery import current_app, shared_task
from django.conf import settings
from django.core.management import call_command
from django.db import InterfaceError, OperationalError

from sms import dispatch
from sms.receipts import receipt_from_dict, receipts_ingest, unmatched_apply, unmatched_expire

logger = logging.getLogger(__name__)

RECEIPT_RETRY_MAX = 300  # seconds between two tries of receipts the database refused


@shared_task(acks_late=True)
def dispatch_queued() -> int:
    """The dispatcher: queued recipients of every message, until none is left (published by
    ``sms.dispatch.wake``, not once per send). In a worker it lingers after part batches and
    makes its last look after half the flag's TTL (``sms.dispatch.claims``). Recipients
    sent back to queued for temporary trouble on every route get one run queued for when the
    first of them is due."""
    if current_app.conf.task_always_eager:
        # Run in place, inside the send's request: no waiting, and no process to give back.
        report = dispatch.queued_dispatch()
    else:
        report = dispatch.queued_dispatch(
            linger=max(settings.MIFUMO_DISPATCH_LINGER_MS, 0) / 1000,
            run_for=settings.MIFUMO_DISPATCH_WAKE_SECONDS / 2,
        )
    if report.retry_at is not None:
        dispatch.dispatch_later(report.retry_at)
    return report.submitted


@shared_task(bind=True, max_retries=None, acks_late=True)
def dispatch_message(self: Any, message_id: str) -> int:
    """One message's queued recipients: what earlier versions queued per send (kept so that
    such tasks still run during an upgrade)."""
    report = dispatch.message_dispatch(message_id=message_id)
    if report.retry_in is not None:
        # Exponential backoff for temporary carrier trouble, capped at ten minutes.
        delay = min(report.retry_in * (2 ** min(self.request.retries, 7)), 600)
        raise self.retry(countdown=delay)
    return report.submitted


@shared_task
def dispatch_due() -> int:
    """Scheduled messages whose time has come go to queued; one wake for all of them."""
    released = dispatch.release_due_messages()
    if released:
        dispatch.dispatch_wake()
    return len(released)


@shared_task
def sweep_stuck() -> int:
    """Work nobody holds (claims past their lease, queued recipients whose wake was lost):
    the dispatcher is woken whatever the "dispatch pending" flag says, since a flag left set
    by a lost task is one of the ways work gets stuck."""
    stuck = dispatch.stuck_messages()
    if stuck:
        dispatch.dispatch_wake(force=True)
    dispatch.expire_unconfirmed()
    return len(stuck)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def ingest_receipts(self: Any, receipts: list[dict[str, Any]], attempt: int = 0) -> int:
    """Receipts whose ids are not recorded yet are kept and applied later (``attempt`` is
    accepted for tasks queued by earlier versions, which retried them here).

    The SMSC was told these receipts arrived, so they must not be lost: when the database
    cannot take them now (a lock or statement timeout, a deadlock, a lost connection) the task
    goes back on the queue with a backoff (up to ``RECEIPT_RETRY_MAX`` seconds) before this
    delivery is acknowledged, however many times that takes; a worker that dies mid-task
    leaves the message on the queue for another."""
    try:
        report = receipts_ingest(receipts=[receipt_from_dict(r) for r in receipts])
    except (OperationalError, InterfaceError) as exc:
        delay = min(2 ** min(self.request.retries, 9), RECEIPT_RETRY_MAX)
        logger.warning(
            "ingesting %d receipts failed (%s); trying again in %ds", len(receipts), exc, delay
        )
        raise self.retry(exc=exc, countdown=delay) from exc
    return report.changed


@shared_task
def apply_unmatched_receipts() -> int:
    """Kept receipts whose ids were recorded since (recording applies its own at once; this
    sweep catches the rest), and dropping those past the receipt timeout. On beat."""
    total = 0
    while (taken := unmatched_apply()) > 0:
        total += taken
    unmatched_expire()
    return total


@shared_task
def purge_messages() -> str:
    """``manage.py purge_messages`` with its default age, MIFUMO_RETENTION_DAYS (daily, on
    beat; 0 keeps everything). Returns its summary line."""
    if settings.MIFUMO_RETENTION_DAYS <= 0:
        return "retention off"
    out = io.StringIO()
    call_command("purge_messages", stdout=out)
    summary = out.getvalue().strip()
    logger.info("%s", summary)
    return summary
