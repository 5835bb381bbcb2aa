"""Recording what carriers said: accepted recipients -> sent (with the ids receipts match
on), refused ones -> failed with a refund, or back to queued to be routed again; the status
changes are signalled once per transaction.

A carrier that learns results one by one (SMPP) has the recipients it accepted recorded in
small groups while the rest of its batch is still on the wire (``EarlyRecorder``), so a
receipt that follows its acknowledgement closely finds its id.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from integration.services import account_refund
from mifumo.db import atomic_unless_nested, insert_from_arrays, update_from_arrays
from sms.carriers.base import SubmitResult
from sms.models import CarrierMessage, Message, Recipient
from sms.receipts import unmatched_recorded
from sms.signals import StatusChange, send_status_changes

logger = logging.getLogger(__name__)
S = Recipient.Status

# The first wait before a recipient in temporary trouble on every route is claimed again; it
# doubles with each attempt, up to RETRY_MAX_SECONDS.
RETRY_SECONDS = 5.0
RETRY_MAX_SECONDS = 600.0


def retry_delay(attempts: int) -> float:
    """Seconds before a recipient turned away for now on its ``attempts``-th claim is
    claimed again: RETRY_SECONDS, doubling per attempt, capped at RETRY_MAX_SECONDS."""
    return min(RETRY_SECONDS * 2 ** min(max(attempts - 1, 0), 7), RETRY_MAX_SECONDS)


@dataclass
class DispatchReport:
    submitted: int = 0
    failed: int = 0
    requeued: int = 0
    handed_off: int = 0
    retry_in: float | None = None  # set when a temporary failure asks for a later retry
    # The earliest time a recipient sent back to queued may be claimed again.
    retry_at: datetime | None = None
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
        self.retry_from(other.retry_at)

    def retry_from(self, moment: datetime | None) -> None:
        """Keep the earlier of ``retry_at`` and ``moment``."""
        if moment is not None and (self.retry_at is None or moment < self.retry_at):
            self.retry_at = moment


def results_record(
    groups: Iterable[tuple[Message, str, Sequence[SubmitResult]]],
    tokens: Mapping[int, datetime | None] | None = None,
) -> DispatchReport:
    """Record each message's results from its carrier, in the caller's transaction (or one
    of its own), and signal every status change of them at once. ``tokens``: each
    recipient's claim (``sms.dispatch.lease``) as the caller holds it; a rejection of a
    recipient claimed by another dispatcher since is not this caller's to record (it would
    fail, refund or requeue what the other is sending)."""
    report = DispatchReport()
    changes: list[StatusChange] = []
    held = tokens or {}
    with atomic_unless_nested():
        for message, carrier, results in groups:
            outcome, changed = _record(message, carrier, results, held)
            if outcome.requeued:
                outcome.requeued_messages.add(message.id)
            report.add(outcome)
            changes.extend(changed)
        send_status_changes(Recipient, changes)
    return report


def _record(
    message: Message,
    carrier: str,
    results: Sequence[SubmitResult],
    tokens: Mapping[int, datetime | None],
) -> tuple[DispatchReport, list[StatusChange]]:
    """Record one message's results; the status changes are returned, not signalled, so the
    caller signals every message of its transaction at once."""
    report = DispatchReport()
    changes: list[StatusChange] = []
    now = timezone.now()
    accepted = [r for r in results if r.accepted]
    rejected = [r for r in results if not r.accepted]
    with transaction.atomic():
        sent_ids = _record_accepted(message, carrier, accepted, now) if accepted else []
        report.submitted = len(sent_ids)
        failed_ids: list[int] = []
        by_error: dict[tuple[str, str], list[int]] = defaultdict(list)
        retry_ids: list[int] = []
        retryable = [r.recipient_id for r in rejected if not r.permanent]
        attempts = (
            dict(Recipient.objects.filter(id__in=retryable).values_list("id", "attempts"))
            if retryable
            else {}
        )
        exhausted = {
            rid for rid, count in attempts.items() if count >= settings.MIFUMO_MAX_SUBMIT_ATTEMPTS
        }
        for result in rejected:
            if result.permanent or result.recipient_id in exhausted:
                key = (result.error_code or "REJECTED", (result.error_message or "")[:255])
                by_error[key].append(result.recipient_id)
                failed_ids.append(result.recipient_id)
            else:
                retry_ids.append(result.recipient_id)
        if failed_ids:
            failed_ids = _mark_failed(carrier, by_error, now, tokens)
        if retry_ids:
            _requeue(retry_ids, attempts, now, report, tokens)
        if failed_ids:
            refund(message, failed_ids, "rejected by the carrier")
            report.failed = len(failed_ids)
            changes.append(StatusChange(message.id, message.account_id, S.FAILED, failed_ids))
        if sent_ids:
            changes.append(StatusChange(message.id, message.account_id, S.SENT, sent_ids))
    return report, changes


def _mark_failed(
    carrier: str,
    by_error: dict[tuple[str, str], list[int]],
    now: datetime,
    tokens: Mapping[int, datetime | None] | None = None,
) -> list[int]:
    """Rejected for good -> failed, for the recipients still being submitted under the
    caller's claim (``tokens``; any claim for a recipient without one); the ids changed
    (the only ones to refund and signal: a recipient whose claim ran out and that has been
    settled since, or that another dispatcher holds now, is not failed or refunded)."""
    held = tokens or {}
    rows = (
        Recipient.objects.select_for_update()
        .filter(id__in=[rid for ids in by_error.values() for rid in ids], status=S.SUBMITTING)
        .order_by("id")  # locked in id order, as receipts and sweeps lock recipients
        .values_list("id", "claimed_at")
    )
    changed = {rid for rid, at in rows if held.get(rid) is None or held[rid] == at}
    for (code, text), ids in by_error.items():
        Recipient.objects.filter(id__in=[rid for rid in ids if rid in changed]).update(
            status=S.FAILED,
            carrier=carrier,
            error_code=code,
            error_message=text,
            updated_at=now,
            claimed_at=None,
        )
    return [rid for ids in by_error.values() for rid in ids if rid in changed]


def fail_unsent(
    groups: Iterable[tuple[Message, list[int]]], code: str, text: str, note: str
) -> int:
    """Claimed recipients that must not be sent after all -> failed with ``code``, refunded
    (``note`` in the ledger) and signalled, for the ones still being submitted; returns how
    many changed."""
    changes: list[StatusChange] = []
    now = timezone.now()
    with atomic_unless_nested():
        for message, ids in groups:
            changed = _mark_failed("", {(code, text): ids}, now)
            if changed:
                refund(message, changed, note)
                changes.append(StatusChange(message.id, message.account_id, S.FAILED, changed))
        send_status_changes(Recipient, changes)
    return sum(len(change.recipient_ids) for change in changes)


def _requeue(
    retry_ids: list[int],
    attempts: dict[int, int],
    now: datetime,
    report: DispatchReport,
    tokens: Mapping[int, datetime | None],
) -> None:
    """Back to queued, not to be claimed again before their backoff (``retry_delay`` of the
    attempts so far) has passed, for the recipients still under the caller's claim. Routed
    afresh when claimed again: the carrier it goes to is not known yet."""
    by_delay: dict[tuple[float, datetime | None], list[int]] = defaultdict(list)
    for rid in retry_ids:
        by_delay[(retry_delay(attempts.get(rid, 1)), tokens.get(rid))].append(rid)
    for (delay, token), ids in by_delay.items():
        not_before = now + timedelta(seconds=delay)
        held = Recipient.objects.filter(id__in=ids, status=S.SUBMITTING)
        if token is not None:
            held = held.filter(claimed_at=token)
        held.update(
            status=S.QUEUED, carrier="", updated_at=now, claimed_at=None, not_before=not_before
        )
    report.requeued = len(retry_ids)
    report.retry_at = now + timedelta(seconds=min(delay for delay, _ in by_delay))


def _record_accepted(
    message: Message, carrier: str, accepted: Sequence[SubmitResult], now: datetime
) -> list[int]:
    """Accepted recipients -> sent, with their parts' ids; the recipients marked sent."""
    # The recipient keeps the carrier's first id verbatim (what its support desk searches
    # by); the parts hold the keys receipts are matched on.
    sent = _mark_sent(
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
    marked = set(sent)
    parts = [
        (carrier_id, result.recipient_id, index)
        for result in accepted
        if result.recipient_id in marked
        for index, carrier_id in enumerate(result.match_keys, start=1)
    ]
    keys = [carrier_id for carrier_id, _, _ in parts]
    if parts:
        ids, recipients, numbers = zip(*parts, strict=True)
        # A carrier that reuses an id would otherwise fail the whole batch.
        insert_from_arrays(
            CarrierMessage,
            {"carrier_message_id": ids, "recipient": recipients, "part": numbers},
            same={"carrier": carrier, "status": "", "created_at": now},
            skip_existing=True,
        )
    # Receipts that overtook these results: applied once the parts are committed.
    transaction.on_commit(lambda: _apply_early_receipts(carrier, keys))
    return sent


def _apply_early_receipts(carrier: str, keys: list[str]) -> None:
    try:
        unmatched_recorded(carrier=carrier, keys=keys)
    except Exception:
        # Kept all the same: the receipts sweep applies them.
        logger.exception("applying early receipts failed; the sweep will")


def _mark_sent(carrier: str, rows: list[tuple[int, str, datetime]], now: datetime) -> list[int]:
    """Accepted recipients -> sent; the ids marked. Only the carrier's id and the time it
    acknowledged the submit (``sent_at``) differ from row to row, so one statement does the
    batch; an ORM ``bulk_update`` builds a CASE per column and row and cost more than
    everything else in dispatch together. A recipient already settled (its claim ran out
    during the call and another dispatcher sent it, or a receipt came) keeps its state; one
    the sweep took back meanwhile is sent, so it is not sent again."""
    if not rows:
        return []
    return update_from_arrays(
        Recipient,
        [rid for rid, _, _ in rows],
        {"carrier_message_id": [cid for _, cid, _ in rows], "sent_at": [at for _, _, at in rows]},
        same={"status": S.SENT, "carrier": carrier, "updated_at": now, "claimed_at": None},
        where={"status": [S.SUBMITTING.value, S.QUEUED.value]},
    )


def refund(message: Message, recipient_ids: list[int], note: str) -> None:
    """Give back what ``recipient_ids`` of ``message`` cost (nothing for test traffic)."""
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


class EarlyRecorder:
    """Records recipients the carrier accepted while the rest of their batch is still on the
    wire (``BaseCarrier.send_messages(on_accepted=...)``), so their receipts find the ids at
    once. A thread of its own (and its own database connection) does the writing, whatever
    queued meanwhile in one transaction, so the carrier's caller keeps submitting; ``finish``
    waits for it. A group that cannot be recorded now is left to the recording of the whole
    batch."""

    def __init__(self, name: str, messages: dict[int, Message], report: DispatchReport) -> None:
        self.name = name
        self.report = report
        self.messages = messages  # recipient id -> its message
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
            outcome = results_record(
                (self.messages[settled[0].recipient_id], self.name, settled)
                for settled in by_message.values()
            )
        except Exception:
            logger.exception("recording %d accepted recipients early failed", len(results))
            return
        self.report.submitted += outcome.submitted
        self.recorded.update(result.recipient_id for result in results)
