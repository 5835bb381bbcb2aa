"""Dispatch: claim queued recipients, route them, hand them to carriers, record what they said.

A claim moves recipients ``queued -> submitting`` in one conditional statement (with
``SKIP LOCKED`` on PostgreSQL), so two workers never submit one recipient. Claimed recipients
are grouped by route (``sms.routing``) and offered to the route's carriers in order: what a
carrier accepts or rejects for good is recorded, and what it could not take for now (the
carrier raised a temporary ``CarrierError``, or rejected a recipient temporarily) moves on to
the next carrier of the route. Recipients that every carrier of their route turned away for
now go back to ``queued`` and are retried later. Every offer is one ``SubmitAttempt`` row.

Carriers are called outside any transaction, under their throughput cap (``sms.throttle``).
Results are recorded in one transaction per batch, with refunds for rejections and the
status-change signal for webhooks; a carrier that learns results one by one (SMPP) has the
recipients it accepted recorded in small groups while the batch is still on the wire, so a
receipt that follows its acknowledgement closely finds its id (a thread of the batch's own
writes them, so the carrier keeps submitting); ``carrier.after_recorded()`` runs after each
recording.

Carriers that submit from a process of their own (SMPP binds, see ``run_smpp``) are not called
here: their recipients get a ``Handoff`` row and stay ``submitting`` under the worker's claim
lease. The process takes handoffs (``handoff_take``), submits, and records through the same
code. While a carrier's process is alive (a heartbeat in the cache) the sweep leaves its
waiting recipients alone; otherwise, once the lease is over, they are taken back and routed
again like any other expired claim.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from integration.services import account_refund
from sms import metrics, routing
from sms.carriers import get_carrier
from sms.carriers.base import BaseCarrier, CarrierError, OutboundSms, SubmitResult
from sms.models import CarrierMessage, Handoff, Message, Recipient, SubmitAttempt
from sms.receipts import unmatched_recorded
from sms.signals import StatusChange, send_status_changes
from sms.throttle import Throttle, carrier_rate, throttle_for

logger = logging.getLogger(__name__)
S = Recipient.Status

RETRY_SECONDS = 5.0
# How long a dedicated carrier process counts as alive after its last heartbeat.
HEARTBEAT_SECONDS = 30


@dataclass
class DispatchReport:
    submitted: int = 0
    failed: int = 0
    requeued: int = 0
    handed_off: int = 0
    retry_in: float | None = None  # set when a temporary failure asks for a later retry
    # Messages with recipients sent back to queued, and whether a whole batch was refused.
    requeued_messages: set[str] = field(default_factory=set)
    carrier_errors: int = 0

    def add(self, other: DispatchReport) -> None:
        self.submitted += other.submitted
        self.failed += other.failed
        self.requeued += other.requeued
        self.handed_off += other.handed_off
        self.requeued_messages |= other.requeued_messages
        self.carrier_errors += other.carrier_errors


@dataclass(eq=False)
class _Item:
    """One claimed recipient on its way through the carriers of its route."""

    recipient_id: int
    phone: str
    message: Message
    carriers: routing.Route  # still to try, the next one first
    last_carrier: str = ""
    last_result: SubmitResult | None = None
    text: str = ""  # the recipient's own text when the message is personalised

    def outbound(self) -> OutboundSms:
        return OutboundSms(
            recipient_id=self.recipient_id,
            message_id=self.message.id,
            to=self.phone,
            sender_id=self.message.sender_id,
            text=self.text or self.message.text,
        )


def _texts(message: Message, recipient_ids: Sequence[int]) -> dict[int, str]:
    """The rendered texts of a personalised message's recipients (none for a plain one)."""
    if not message.personalised:
        return {}
    return dict(Recipient.objects.filter(id__in=recipient_ids).values_list("id", "text"))


def claim(message_id: str, limit: int) -> list[tuple[int, str]]:
    now = timezone.now()
    with transaction.atomic():
        rows = (
            Recipient.objects.filter(message_id=message_id, status=S.QUEUED)
            .order_by("id")
            .select_for_update(skip_locked=True)
        )
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
    while True:
        picked = claim(message.id, settings.MIFUMO_DISPATCH_BATCH)
        if not picked:
            break
        texts = _texts(message, [recipient_id for recipient_id, _ in picked])
        items = [
            _Item(recipient_id, phone, message, route, text=texts.get(recipient_id, ""))
            for route, pairs in routing.group_by_route(picked, is_test=message.is_test).items()
            for recipient_id, phone in pairs
        ]
        outcome = deliver(items=items)
        report.add(outcome)
        if outcome.requeued:
            # Temporary trouble on every route: stop hammering; the task retries later.
            report.retry_in = RETRY_SECONDS
            break
    return report


def deliver(
    *, items: list[_Item], here: str | None = None, stop: Callable[[], bool] | None = None
) -> DispatchReport:
    """Offer claimed recipients to their carriers in route order (see the module docstring).

    ``here`` names the dedicated carrier this process hosts (``run_smpp``): it is called
    rather than handed off to, and when ``stop()`` turns true between two of its batches the
    recipients not yet sent to it are handed back to it for the next process.
    """
    report = DispatchReport()
    turned_away: list[_Item] = []
    while items:
        by_carrier: dict[str, list[_Item]] = defaultdict(list)
        for item in items:
            if item.carriers:
                by_carrier[item.carriers[0]].append(item)
            else:
                turned_away.append(item)
        items = []
        for name, group in by_carrier.items():
            if name != here and routing.runs_in_own_process(name):
                handoff(recipient_ids=[item.recipient_id for item in group], carrier=name)
                report.handed_off += len(group)
                continue
            own = name == here
            moved_on, unsent = _offer(name, group, report, stop if own else None, own=own)
            if unsent:
                handoff(recipient_ids=[item.recipient_id for item in unsent], carrier=name)
                report.handed_off += len(unsent)
            for item in moved_on:
                (items if item.carriers else turned_away).append(item)
    if turned_away:
        _turn_away(turned_away, report)
    return report


def _offer(
    name: str,
    group: list[_Item],
    report: DispatchReport,
    stop: Callable[[], bool] | None,
    *,
    own: bool = False,
) -> tuple[list[_Item], list[_Item]]:
    """Submit ``group`` to carrier ``name`` in batches under its cap. Returns the items it could
    not take for now (moved on to their next carrier) and those left unsent because of
    ``stop``. ``own``: this is the carrier's own process (``run_smpp``)."""
    try:
        carrier = get_carrier(name)
    except Exception as exc:  # noqa: BLE001 - a broken carrier must not stop the others
        logger.error("carrier %s is unusable: %s", name, exc)
        unusable = CarrierError(f"carrier {name} is unusable: {exc}", code="CARRIER_UNAVAILABLE")
        _record_attempts(name, group, [], unusable, 0, timezone.now())
        report.carrier_errors += 1
        return _skip(name, group, unusable), []
    # In its own process, a carrier that paces its own submits (an SMPP bind with RATE, a token
    # bucket kept from batch to batch) takes whole batches: the per-second cap on top would
    # leave the bind idle until the next wall-clock second after every second's worth. Binds
    # opened by workers (one per process) keep sharing the cap.
    paced = own and carrier.paces_itself
    throttle = None if paced else throttle_for(name)
    moved_on: list[_Item] = []
    pending = group
    while pending:
        if stop is not None and stop():
            return moved_on, pending
        # A paced bind still takes about a second's worth at a time, so a stop is prompt.
        count = _within(carrier_rate(name), pending) if paced else _admitted(throttle, pending)
        batch, pending = pending[:count], pending[count:]
        error, refused = _submit(name, carrier, batch, report)
        moved_on.extend(refused)
        if error is not None and not error.permanent:
            # The carrier is down for now: the rest of the group need not wait for it too.
            moved_on.extend(_skip(name, pending, error))
            break
    return moved_on, []


def _within(parts: int, pending: list[_Item]) -> int:
    """How many of ``pending`` (at least one) fit in ``parts`` message parts."""
    total = 0
    for count, item in enumerate(pending):
        total += item.message.segments
        if total > parts:
            return max(1, count)
    return len(pending)


def _admitted(throttle: Throttle | None, pending: list[_Item]) -> int:
    if throttle is None:
        return len(pending)
    return throttle.admit([item.message.segments for item in pending])


def _submit(
    name: str, carrier: BaseCarrier, batch: list[_Item], report: DispatchReport
) -> tuple[CarrierError | None, list[_Item]]:
    """One carrier call for ``batch`` and its recording; returns the batch-wide error, if any,
    and the items the carrier refused for now."""
    outbound = [item.outbound() for item in batch]
    started_at = timezone.now()
    started = time.monotonic()
    error: CarrierError | None = None
    early = _EarlyRecorder(name, batch, report)
    try:
        results = carrier.send_messages(outbound, on_accepted=early)
    except CarrierError as exc:
        logger.warning("carrier %s refused a batch of %d: %s", name, len(batch), exc)
        error = exc
        results = [
            SubmitResult.rejected(sms, exc.code, str(exc)[:255], permanent=exc.permanent)
            for sms in outbound
        ]
        report.carrier_errors += 1
    finally:
        early.finish()
    elapsed = time.monotonic() - started
    latency_ms = int(elapsed * 1000)
    metrics.observe_carrier_submit(carrier=name, seconds=elapsed, results=results, error=error)
    final: dict[str, list[SubmitResult]] = defaultdict(list)
    messages: dict[str, Message] = {}
    refused: list[_Item] = []
    for item, result in zip(batch, results, strict=True):
        item.last_carrier = name
        item.last_result = result
        if result.recipient_id in early.recorded:
            continue
        if result.accepted or result.permanent:
            final[item.message.id].append(result)
            messages[item.message.id] = item.message
        else:
            item.carriers = item.carriers[1:]
            refused.append(item)
    with transaction.atomic():
        changes: list[StatusChange] = []
        for message_id, settled in final.items():
            outcome, changed = _record(messages[message_id], name, settled)
            report.submitted += outcome.submitted
            report.failed += outcome.failed
            changes.extend(changed)
        _record_attempts(name, batch, results, error, latency_ms, started_at)
        send_status_changes(Recipient, changes)
    carrier.after_recorded()
    return error, refused


class _EarlyRecorder:
    """Records recipients the carrier accepted while the rest of their batch is still on the
    wire (``BaseCarrier.send_messages(on_accepted=...)``), so their receipts find the ids at
    once. A thread of its own (and its own database connection) does the writing, whatever
    queued meanwhile in one transaction, so the carrier's caller keeps submitting; ``finish``
    waits for it. A group that cannot be recorded now is left to the recording of the whole
    batch."""

    def __init__(self, name: str, batch: list[_Item], report: DispatchReport) -> None:
        self.name = name
        self.report = report
        self.messages = {item.recipient_id: item.message for item in batch}
        self.recorded: set[int] = set()
        self.queue: queue.SimpleQueue[list[SubmitResult] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None

    def __call__(self, results: Sequence[SubmitResult]) -> None:
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._run, name=f"record-{self.name}", daemon=True
            )
            self.thread.start()
        self.queue.put(list(results))

    def finish(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()

    def _run(self) -> None:
        try:
            done = False
            while not done:
                results: list[SubmitResult] = []
                group = self.queue.get()
                while True:
                    if group is None:
                        done = True
                    else:
                        results.extend(group)
                    try:
                        group = self.queue.get_nowait()
                    except queue.Empty:
                        break
                if results:
                    self._record(results)
        finally:
            connection.close()  # this thread's own

    def _record(self, results: list[SubmitResult]) -> None:
        by_message: dict[str, list[SubmitResult]] = defaultdict(list)
        for result in results:
            by_message[self.messages[result.recipient_id].id].append(result)
        try:
            with transaction.atomic():
                changes: list[StatusChange] = []
                submitted = 0
                for settled in by_message.values():
                    message = self.messages[settled[0].recipient_id]
                    outcome, changed = _record(message, self.name, settled)
                    submitted += outcome.submitted
                    changes.extend(changed)
                send_status_changes(Recipient, changes)
        except Exception:
            logger.exception("recording %d accepted recipients early failed", len(results))
            return
        self.report.submitted += submitted
        self.recorded.update(result.recipient_id for result in results)


def _skip(name: str, items: list[_Item], error: CarrierError) -> list[_Item]:
    for item in items:
        item.last_carrier = name
        item.last_result = SubmitResult.rejected(
            item.outbound(), error.code, str(error)[:255], permanent=False
        )
        item.carriers = item.carriers[1:]
    return items


def _record_attempts(
    name: str,
    batch: list[_Item],
    results: Sequence[SubmitResult],
    error: CarrierError | None,
    latency_ms: int,
    started_at: datetime,
) -> None:
    by_message: dict[str, list[_Item]] = defaultdict(list)
    for item in batch:
        by_message[item.message.id].append(item)
    outcome = {result.recipient_id: result for result in results}
    attempts = []
    for message_id, items in by_message.items():
        mine = [outcome[item.recipient_id] for item in items if item.recipient_id in outcome]
        accepted = sum(1 for result in mine if result.accepted)
        codes = Counter(result.error_code or "" for result in mine if not result.accepted)
        code = error.code if error is not None else (codes.most_common(1)[0][0] if codes else "")
        attempts.append(
            SubmitAttempt(
                message_id=message_id,
                carrier=name,
                recipient_count=len(items),
                accepted=accepted,
                rejected=len(items) - accepted,
                error_code=code[:40],
                latency_ms=latency_ms,
                created_at=started_at,
            )
        )
    SubmitAttempt.objects.bulk_create(attempts)


def _turn_away(items: list[_Item], report: DispatchReport) -> None:
    """Every carrier of their route refused these for now: back to queued (or failed once
    they used up their attempts)."""
    by_message: dict[str, list[_Item]] = defaultdict(list)
    for item in items:
        by_message[item.message.id].append(item)
    with transaction.atomic():
        changes: list[StatusChange] = []
        for message_id, group in by_message.items():
            results = [item.last_result for item in group if item.last_result is not None]
            outcome, changed = _record(group[0].message, group[0].last_carrier, results)
            report.failed += outcome.failed
            report.requeued += outcome.requeued
            if outcome.requeued:
                report.requeued_messages.add(message_id)
            changes.extend(changed)
        send_status_changes(Recipient, changes)


# -- carriers in a process of their own -------------------------------------------------------


def handoff(*, recipient_ids: Sequence[int], carrier: str) -> None:
    """Leave claimed recipients for ``carrier``'s own process; their claim lease restarts."""
    if not recipient_ids:
        return
    now = timezone.now()
    ids = list(recipient_ids)
    with transaction.atomic():
        Recipient.objects.filter(id__in=ids, status=S.SUBMITTING).update(
            carrier=carrier, claimed_at=now, updated_at=now
        )
        Handoff.objects.bulk_create(
            [Handoff(recipient_id=rid, carrier=carrier, created_at=now) for rid in ids],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["recipient"],
            update_fields=["carrier", "created_at"],
        )


def handoff_take(*, carrier: str, limit: int) -> list[tuple[int, str, str]]:
    """Take up to ``limit`` recipients left for ``carrier``, oldest first, as (recipient id,
    message id, phone). Taking deletes the handoff, so no two processes take one recipient;
    a handoff whose recipient moved on meanwhile is dropped."""
    now = timezone.now()
    with transaction.atomic():
        rows = (
            Handoff.objects.filter(carrier=carrier)
            .order_by("recipient_id")
            .select_for_update(skip_locked=True)
        )
        ids = list(rows.values_list("recipient_id", flat=True)[:limit])
        if not ids:
            return []
        Handoff.objects.filter(recipient_id__in=ids).delete()
        taken = list(
            Recipient.objects.filter(id__in=ids, status=S.SUBMITTING, carrier=carrier)
            .order_by("id")
            .values_list("id", "message_id", "phone")
        )
        Recipient.objects.filter(id__in=[rid for rid, _, _ in taken]).update(
            claimed_at=now, updated_at=now
        )
    return taken


def handoff_dispatch(
    *, carrier: str, limit: int, stop: Callable[[], bool] | None = None
) -> DispatchReport | None:
    """One round of a dedicated carrier's process: take handoffs, submit them through
    ``carrier`` (failing over along each route past it), record. None when there was none."""
    taken = handoff_take(carrier=carrier, limit=limit)
    if not taken:
        return None
    messages = Message.objects.in_bulk({message_id for _, message_id, _ in taken})
    personalised = [rid for rid, message_id, _ in taken if messages[message_id].personalised]
    texts = dict(Recipient.objects.filter(id__in=personalised).values_list("id", "text"))
    items = []
    for recipient_id, message_id, phone in taken:
        message = messages[message_id]
        after = routing.carriers_after(carrier, phone, is_test=message.is_test)
        text = texts.get(recipient_id, "")
        items.append(_Item(recipient_id, phone, message, (carrier, *after), text=text))
    report = deliver(items=items, here=carrier, stop=stop)
    if report.requeued_messages:
        _retry_later(report.requeued_messages)
    return report


def _retry_later(message_ids: set[str]) -> None:
    from sms.tasks import dispatch_message

    for message_id in sorted(message_ids):
        try:
            dispatch_message.apply_async((message_id,), countdown=RETRY_SECONDS)
        except Exception:  # noqa: BLE001 - the sweep finds queued work nobody holds
            logger.warning("broker unavailable; the sweep will retry %s", message_id)


def carrier_process_heartbeat(*, carrier: str) -> None:
    try:
        cache.set(f"carrier-process:{carrier}", time.time(), timeout=HEARTBEAT_SECONDS)
    except Exception:  # noqa: BLE001 - without it the sweep only re-routes sooner
        logger.warning("cannot record the heartbeat of %s: cache unavailable", carrier)


def carrier_process_alive(*, carrier: str) -> bool:
    try:
        return cache.get(f"carrier-process:{carrier}") is not None
    except Exception:  # noqa: BLE001
        return False


def record_results(
    *, message: Message, carrier: str, results: Sequence[SubmitResult]
) -> DispatchReport:
    with transaction.atomic():
        report, changes = _record(message, carrier, results)
        send_status_changes(Recipient, changes)
    return report


def _record(
    message: Message, carrier: str, results: Sequence[SubmitResult]
) -> tuple[DispatchReport, list[StatusChange]]:
    """Record one message's results; the status changes are returned, not signalled, so the
    caller signals every message of its transaction at once."""
    report = DispatchReport()
    changes: list[StatusChange] = []
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
                carrier=carrier,
                error_code=code,
                error_message=text,
                updated_at=now,
                claimed_at=None,
            )
        if retry_ids:
            # Routed afresh when claimed again: the carrier it goes to is not known yet.
            Recipient.objects.filter(id__in=retry_ids, status=S.SUBMITTING).update(
                status=S.QUEUED, carrier="", updated_at=now, claimed_at=None
            )
            report.requeued = len(retry_ids)
        if failed_ids:
            _refund(message, failed_ids, "rejected by the carrier")
            report.failed = len(failed_ids)
            changes.append(StatusChange(message.id, message.account_id, S.FAILED, failed_ids))
        if accepted:
            changes.append(
                StatusChange(
                    message.id, message.account_id, S.SENT, [r.recipient_id for r in accepted]
                )
            )
    return report, changes


def _record_accepted(
    message: Message, carrier: str, accepted: Sequence[SubmitResult], now: datetime
) -> None:
    # The recipient keeps the carrier's first id verbatim (what its support desk searches
    # by); the parts hold the keys receipts are matched on.
    _mark_sent(
        carrier,
        [
            (
                r.recipient_id,
                r.carrier_message_ids[0] if r.carrier_message_ids else "",
                min(r.accepted_at or now, now),
            )
            for r in accepted
        ],
        now,
    )
    parts = [
        CarrierMessage(
            carrier=carrier,
            carrier_message_id=carrier_id,
            recipient_id=result.recipient_id,
            part=index,
            created_at=now,
        )
        for result in accepted
        for index, carrier_id in enumerate(result.match_keys, start=1)
    ]
    # A carrier that reuses an id would otherwise fail the whole batch.
    CarrierMessage.objects.bulk_create(parts, batch_size=1000, ignore_conflicts=True)
    keys = [part.carrier_message_id for part in parts]
    # Receipts that overtook these results: applied once the parts are committed.
    transaction.on_commit(lambda: _apply_early_receipts(carrier, keys))


def _apply_early_receipts(carrier: str, keys: list[str]) -> None:
    try:
        unmatched_recorded(carrier=carrier, keys=keys)
    except Exception:
        # Kept all the same: the receipts sweep applies them.
        logger.exception("applying early receipts failed; the sweep will")


def _mark_sent(carrier: str, rows: list[tuple[int, str, datetime]], now: datetime) -> None:
    """Accepted recipients -> sent. Only the carrier's id and the time it acknowledged the
    submit (``sent_at``) differ from row to row, so one statement does the batch; an ORM
    ``bulk_update`` builds a CASE per column and row and cost more than everything else in
    dispatch together."""
    if not rows:
        return
    ids = [rid for rid, _, _ in rows]
    table = connection.ops.quote_name(Recipient._meta.db_table)
    col = {
        name: _column(name)
        for name in (
            "id",
            "status",
            "carrier",
            "carrier_message_id",
            "sent_at",
            "updated_at",
            "claimed_at",
        )
    }
    # Identifiers come from the model's meta, quoted; every value is a parameter.
    sql = (
        f"UPDATE {table} AS r SET {col['status']} = %s, {col['carrier']} = %s, "  # noqa: S608
        f"{col['carrier_message_id']} = v.carrier_id, {col['sent_at']} = v.sent_at, "
        f"{col['updated_at']} = %s, {col['claimed_at']} = NULL "
        "FROM unnest(%s::bigint[], %s::varchar[], %s::timestamptz[]) "
        f"AS v(id, carrier_id, sent_at) WHERE r.{col['id']} = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [S.SENT, carrier, now, ids, [cid for _, cid, _ in rows], [at for _, _, at in rows]],
        )


def _column(name: str) -> str:
    field = Recipient._meta.get_field(name)
    assert isinstance(field, Field)
    return str(connection.ops.quote_name(field.column))


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
            rows = Message.objects.filter(pk=message_id).select_for_update(skip_locked=True)
            if not rows.exists():
                continue  # another scheduler holds it
            moved = Recipient.objects.filter(message_id=message_id, status=S.SCHEDULED).update(
                status=S.QUEUED, updated_at=timezone.now()
            )
        if moved:
            released.append(message_id)
    return released


def stuck_messages(*, now: object = None) -> list[str]:
    """Messages with work nobody holds: claims past their lease (a worker died, or a handoff
    whose carrier process is not running) are taken back, and queued recipients untouched for
    a minute (their task was lost with the broker) are reported so the caller can enqueue them
    again."""
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
