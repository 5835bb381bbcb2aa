"""Sweeps on beat: scheduled messages whose time has come (less the phones that opted out
meanwhile; failed whole when their account was suspended or their sender ID stopped being
approved), claims past their lease, queued work whose wake was lost, and sent recipients
whose receipt never came.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from contacts.selectors import opted_out_numbers
from integration.models import Account
from sms import routing
from sms.dispatch.handoffs import carrier_process_alive
from sms.dispatch.record import refund
from sms.models import Handoff, Message, Recipient
from sms.sender_ids import sender_id_is_approved
from sms.signals import StatusChange, send_status_changes

logger = logging.getLogger(__name__)
S = Recipient.Status


def release_due_messages(*, now: object = None, limit: int = 500) -> list[str]:
    """Scheduled messages whose time has come: scheduled -> queued. Returns their ids."""
    moment = now or timezone.now()
    due = list(
        Message.objects.filter(
            schedule_time__lte=moment,
            canceled_at__isnull=True,
            recipients__status=S.SCHEDULED,
        )
        .values_list("id", flat=True)
        .distinct()[:limit]
    )
    released: list[str] = []
    for message_id in due:
        with transaction.atomic():
            message = (
                Message.objects.filter(pk=message_id)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("account")
                .first()
            )
            if message is None:
                continue  # another scheduler holds it
            scheduled = Recipient.objects.filter(message_id=message_id, status=S.SCHEDULED)
            refusal = _refusal(message)
            if refusal is not None:
                _fail(message, list(scheduled.values_list("id", flat=True)), *refusal)
                continue
            _fail_opted_out(message, scheduled)
            moved = scheduled.update(status=S.QUEUED, updated_at=timezone.now())
        if moved:
            released.append(message_id)
    return released


def _refusal(message: Message) -> tuple[str, str] | None:
    """Why a scheduled message may no longer be sent at all (error code, text), or None: its
    account was suspended, or its sender ID is no longer one the account may use, since it
    was accepted (up to MIFUMO_MAX_SCHEDULE_DAYS earlier)."""
    account = message.account
    if account.status != Account.Status.ACTIVE:
        return "ACCOUNT_SUSPENDED", "The account was suspended before the scheduled time"
    if not sender_id_is_approved(account=account, value=message.sender_id):
        return (
            "INVALID_SENDER_ID",
            f"The sender ID {message.sender_id} was no longer approved at the scheduled time",
        )
    return None


def _fail_opted_out(message: Message, scheduled: QuerySet[Recipient]) -> None:
    """Recipients whose phone opted out after the message was scheduled: failed as
    OPTED_OUT, not sent."""
    opted_out = opted_out_numbers(account_id=message.account_id)
    ids = list(scheduled.filter(phone__in=opted_out).values_list("id", flat=True))
    _fail(message, ids, "OPTED_OUT", "The phone opted out before the scheduled time")


def _fail(message: Message, ids: list[int], code: str, text: str) -> None:
    """Recipients ``ids`` of ``message``: failed with ``code`` and ``text``, refunded (the
    text in the ledger), signalled."""
    if not ids:
        return
    Recipient.objects.filter(id__in=ids).update(
        status=S.FAILED, error_code=code, error_message=text, updated_at=timezone.now()
    )
    refund(message, ids, text[0].lower() + text[1:])
    send_status_changes(Recipient, [StatusChange(message.id, message.account_id, S.FAILED, ids)])


def stuck_messages(*, now: object = None) -> list[str]:
    """Messages with work nobody holds: claims past their lease (a worker died, or a handoff
    whose carrier process is not running) are taken back, and queued recipients untouched for
    a minute (their wake was lost with the broker) are reported so the caller can wake the
    dispatcher; recipients waiting out a backoff are not idle."""
    moment = now or timezone.now()
    lease = timedelta(seconds=settings.MIFUMO_CLAIM_LEASE_SECONDS)
    cutoff = moment - lease  # type: ignore[operator]
    expired = Recipient.objects.filter(status=S.SUBMITTING, claimed_at__lt=cutoff)
    alive = [name for name in routing.dedicated_carriers() if carrier_process_alive(carrier=name)]
    if alive:
        # A backlog waiting for a live process is not stuck, however long it takes.
        expired = expired.exclude(handoff__carrier__in=alive)
    ids: set[str] = set()
    taken_back = 0
    while True:
        rows = list(expired.values_list("id", "message_id")[:5000])
        if not rows:
            break
        recipient_ids = [rid for rid, _ in rows]
        with transaction.atomic():
            moved = Recipient.objects.filter(
                id__in=recipient_ids, status=S.SUBMITTING, claimed_at__lt=cutoff
            ).update(status=S.QUEUED, carrier="", claimed_at=None, updated_at=moment)
            Handoff.objects.filter(recipient_id__in=recipient_ids).delete()
        taken_back += moved
        ids.update(message_id for _, message_id in rows)
        if len(rows) < 5000:
            break
    if taken_back:
        logger.warning("took back %d recipients whose claim expired", taken_back)
    idle = Recipient.objects.filter(
        Q(not_before__isnull=True) | Q(not_before__lte=moment),  # not waiting out a backoff
        status=S.QUEUED,
        updated_at__lt=moment - timedelta(seconds=60),  # type: ignore[operator]
    )
    ids.update(idle.values_list("message_id", flat=True).distinct()[:1000])
    return sorted(ids)


def _failure_only_carriers() -> set[str]:
    """Carriers asked for receipts of failures only (SMPP ``REGISTERED_DELIVERY = 2``)."""
    return {
        name
        for name, options in settings.MIFUMO_CARRIERS.items()
        if {str(k).upper(): v for k, v in options.items()}.get("REGISTERED_DELIVERY") in (2, "2")
    }


def expire_unconfirmed(*, now: object = None) -> int:
    """Sent recipients that never got a receipt within the timeout fail as EXPIRED; those of a
    carrier that reports failures only are delivered then (no failure came), without a
    delivery time."""
    moment = now or timezone.now()
    cutoff = moment - timedelta(seconds=settings.MIFUMO_RECEIPT_TIMEOUT_SECONDS)  # type: ignore[operator]
    failure_only = _failure_only_carriers()
    total = 0
    while True:
        ids = list(
            Recipient.objects.filter(status=S.SENT, sent_at__lt=cutoff).values_list(
                "id", flat=True
            )[:1000]
        )
        if not ids:
            return total
        with transaction.atomic():
            # In id order, like receipts, so the two never lock each other's rows in a cycle.
            rows = list(
                Recipient.objects.select_for_update()
                .filter(id__in=ids, status=S.SENT)
                .order_by("id")
                .values_list("id", "message_id", "account_id", "carrier")
            )
            delivered = [rid for rid, _, _, carrier in rows if carrier in failure_only]
            expired = [rid for rid, _, _, carrier in rows if carrier not in failure_only]
            Recipient.objects.filter(id__in=expired).update(
                status=S.FAILED,
                error_code="EXPIRED",
                error_message="No delivery receipt before the validity period ended",
                updated_at=moment,
            )
            if delivered:
                Recipient.objects.filter(id__in=delivered).update(
                    status=S.DELIVERED, updated_at=moment
                )
            by_message: dict[tuple[str, int, str], list[int]] = defaultdict(list)
            for rid, message_id, account_id, carrier in rows:
                status = S.DELIVERED if carrier in failure_only else S.FAILED
                by_message[(message_id, account_id, status)].append(rid)
            send_status_changes(
                Recipient,
                [
                    StatusChange(message_id, account_id, status, changed)
                    for (message_id, account_id, status), changed in by_message.items()
                ],
            )
        total += len(rows)
