"""Dispatch: claim queued recipients, hand them to a carrier, record what it said.

A claim moves recipients ``queued -> submitting`` in one conditional statement (with
``SKIP LOCKED`` on PostgreSQL), so two workers never submit one recipient. The carrier is
called outside any transaction. Results are recorded in one transaction per batch, with
refunds for rejections and the status-change signal for webhooks.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integration.services import account_refund
from mifumo.db import is_postgres
from sms.carriers import get_carrier
from sms.carriers.base import CarrierError, OutboundSms, SubmitResult
from sms.models import CarrierMessage, Message, Recipient
from sms.signals import recipients_status_changed

logger = logging.getLogger(__name__)
S = Recipient.Status


@dataclass
class DispatchReport:
    submitted: int = 0
    failed: int = 0
    requeued: int = 0
    retry_in: float | None = None  # set when a temporary failure asks for a later retry


def carrier_name_for(message: Message) -> str:
    """Test keys always use the simulator; everything else the configured route."""
    if message.is_test:
        return "simulator"
    from sms.routing import route_for_message

    return route_for_message(message)


def claim(message_id: str, limit: int) -> list[tuple[int, str]]:
    now = timezone.now()
    with transaction.atomic():
        rows = Recipient.objects.filter(message_id=message_id, status=S.QUEUED).order_by("id")
        if is_postgres():
            rows = rows.select_for_update(skip_locked=True)
        picked = list(rows.values_list("id", "phone")[:limit])
        if not picked:
            return []
        ids = [rid for rid, _ in picked]
        Recipient.objects.filter(id__in=ids, status=S.QUEUED).update(
            status=S.SUBMITTING, claimed_at=now, updated_at=now, attempts=F("attempts") + 1
        )
    return picked


def message_dispatch(*, message_id: str) -> DispatchReport:
    report = DispatchReport()
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        logger.warning("dispatch of unknown message %s", message_id)
        return report
    carrier_name = carrier_name_for(message)
    carrier = get_carrier(carrier_name)
    while True:
        picked = claim(message.id, settings.MIFUMO_DISPATCH_BATCH)
        if not picked:
            break
        batch = [
            OutboundSms(
                recipient_id=rid,
                message_id=message.id,
                to=phone,
                sender_id=message.sender_id,
                text=message.text,
            )
            for rid, phone in picked
        ]
        try:
            results = carrier.send_messages(batch)
        except CarrierError as exc:
            logger.warning("carrier %s failed a batch of %s: %s", carrier_name, message.id, exc)
            results = [
                SubmitResult.rejected(sms, exc.code, str(exc)[:255], permanent=exc.permanent)
                for sms in batch
            ]
        outcome = record_results(message=message, carrier=carrier_name, results=results)
        carrier.after_recorded()
        report.submitted += outcome.submitted
        report.failed += outcome.failed
        report.requeued += outcome.requeued
        if outcome.requeued:
            # Temporary trouble: stop hammering the carrier; the task retries later.
            report.retry_in = 5.0
            break
    return report


def record_results(
    *, message: Message, carrier: str, results: Sequence[SubmitResult]
) -> DispatchReport:
    report = DispatchReport()
    now = timezone.now()
    accepted = [r for r in results if r.accepted]
    rejected = [r for r in results if not r.accepted]
    with transaction.atomic():
        if accepted:
            _record_accepted(message, carrier, accepted, now)
            report.submitted = len(accepted)
        failed_ids: list[int] = []
        by_error: dict[tuple[str, str], list[int]] = defaultdict(list)
        retry_ids: list[int] = []
        exhausted = set(
            Recipient.objects.filter(
                id__in=[r.recipient_id for r in rejected if not r.permanent],
                attempts__gte=settings.MIFUMO_MAX_SUBMIT_ATTEMPTS,
            ).values_list("id", flat=True)
        )
        for result in rejected:
            if result.permanent or result.recipient_id in exhausted:
                key = (result.error_code or "REJECTED", (result.error_message or "")[:255])
                by_error[key].append(result.recipient_id)
                failed_ids.append(result.recipient_id)
            else:
                retry_ids.append(result.recipient_id)
        for (code, text), ids in by_error.items():
            Recipient.objects.filter(id__in=ids, status=S.SUBMITTING).update(
                status=S.FAILED,
                error_code=code,
                error_message=text,
                updated_at=now,
                claimed_at=None,
            )
        if retry_ids:
            Recipient.objects.filter(id__in=retry_ids, status=S.SUBMITTING).update(
                status=S.QUEUED, updated_at=now, claimed_at=None
            )
            report.requeued = len(retry_ids)
        if failed_ids:
            _refund(message, failed_ids, "rejected by the carrier")
            report.failed = len(failed_ids)
            _signal(message, S.FAILED, failed_ids)
        if accepted:
            _signal(message, S.SENT, [r.recipient_id for r in accepted])
    return report


def _record_accepted(
    message: Message, carrier: str, accepted: Sequence[SubmitResult], now: object
) -> None:
    rows = list(Recipient.objects.filter(id__in=[r.recipient_id for r in accepted]))
    by_id = {r.pk: r for r in rows}
    parts: list[CarrierMessage] = []
    for result in accepted:
        row = by_id[result.recipient_id]
        row.status = S.SENT
        row.carrier = carrier
        row.carrier_message_id = result.carrier_message_ids[0] if result.carrier_message_ids else ""
        row.sent_at = now  # type: ignore[assignment]
        row.updated_at = now  # type: ignore[assignment]
        row.claimed_at = None
        for index, carrier_id in enumerate(result.carrier_message_ids, start=1):
            parts.append(
                CarrierMessage(
                    carrier=carrier, carrier_message_id=carrier_id, recipient_id=row.pk, part=index
                )
            )
    Recipient.objects.bulk_update(
        rows,
        ["status", "carrier", "carrier_message_id", "sent_at", "updated_at", "claimed_at"],
        batch_size=500,
    )
    # A carrier that reuses an id would otherwise fail the whole batch.
    CarrierMessage.objects.bulk_create(parts, batch_size=1000, ignore_conflicts=True)


def _refund(message: Message, recipient_ids: list[int], note: str) -> None:
    if message.is_test:
        return
    amount = sum(
        Recipient.objects.filter(id__in=recipient_ids).values_list("cost", flat=True),
        Decimal("0.00"),
    )
    if amount > 0:
        account_refund(
            account_id=message.account_id,
            amount=amount,
            reference=message.id,
            note=f"{len(recipient_ids)} recipients {note}",
        )


def _signal(message: Message, status: str, recipient_ids: list[int]) -> None:
    recipients_status_changed.send(
        sender=Recipient,
        message_id=message.id,
        account_id=message.account_id,
        status=status,
        recipient_ids=recipient_ids,
    )


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
            rows = Message.objects.filter(pk=message_id)
            if is_postgres():
                rows = rows.select_for_update(skip_locked=True)
            if not rows.exists():
                continue  # another scheduler holds it
            moved = Recipient.objects.filter(message_id=message_id, status=S.SCHEDULED).update(
                status=S.QUEUED, updated_at=timezone.now()
            )
        if moved:
            released.append(message_id)
    return released


def stuck_messages(*, now: object = None) -> list[str]:
    """Messages with work nobody holds: claims past their lease (a worker died) are taken
    back, and queued recipients untouched for a minute (their task was lost with the broker)
    are reported so the caller can enqueue them again."""
    moment = now or timezone.now()
    lease = timedelta(seconds=settings.MIFUMO_CLAIM_LEASE_SECONDS)
    expired = Recipient.objects.filter(status=S.SUBMITTING, claimed_at__lt=moment - lease)  # type: ignore[operator]
    ids = set(expired.values_list("message_id", flat=True).distinct()[:1000])
    taken_back = expired.update(status=S.QUEUED, claimed_at=None, updated_at=moment)
    if taken_back:
        logger.warning("took back %d recipients whose claim expired", taken_back)
    idle = Recipient.objects.filter(
        status=S.QUEUED,
        updated_at__lt=moment - timedelta(seconds=60),  # type: ignore[operator]
    )
    ids.update(idle.values_list("message_id", flat=True).distinct()[:1000])
    return sorted(ids)


def expire_unconfirmed(*, now: object = None) -> int:
    """Sent recipients that never got a receipt within the timeout fail as EXPIRED."""
    moment = now or timezone.now()
    cutoff = moment - timedelta(seconds=settings.MIFUMO_RECEIPT_TIMEOUT_SECONDS)  # type: ignore[operator]
    total = 0
    while True:
        rows = list(
            Recipient.objects.filter(status=S.SENT, sent_at__lt=cutoff).values_list(
                "id", "message_id"
            )[:1000]
        )
        if not rows:
            return total
        by_message: dict[str, list[int]] = defaultdict(list)
        for rid, mid in rows:
            by_message[mid].append(rid)
        for message_id, ids in by_message.items():
            with transaction.atomic():
                changed = list(
                    Recipient.objects.select_for_update()
                    .filter(id__in=ids, status=S.SENT)
                    .values_list("id", flat=True)
                )
                Recipient.objects.filter(id__in=changed).update(
                    status=S.FAILED,
                    error_code="EXPIRED",
                    error_message="No delivery receipt before the validity period ended",
                    updated_at=moment,
                )
                if changed:
                    message = Message.objects.get(pk=message_id)
                    _signal(message, S.FAILED, changed)
                total += len(changed)
