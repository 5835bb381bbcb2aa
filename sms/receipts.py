"""Delivery receipts: match each to the recipient's part, move recipients to a final state,
signal the batch's changes together. A receipt for an id we do not know yet (it overtook the
submit's result, or its batch is still being recorded) is kept in ``UnmatchedReceipt``, in the
same transaction, and applied when its id is recorded (or by the sweep); it is dropped only
after the receipt timeout. A receipt handed to ``receipts_ingest`` is therefore never lost,
which is what lets a carrier acknowledge it."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from celery import signature
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from mifumo.api.text import storable
from mifumo.db import column, lock_until_commit, table, update_from_arrays
from mifumo.postgresql.base import Array
from sms.carriers.base import DeliveryReceipt, DeliveryStatus
from sms.models import CarrierMessage, Recipient, UnmatchedReceipt
from sms.signals import StatusChange, send_status_changes

logger = logging.getLogger(__name__)
S = Recipient.Status
_CARRIER_ID_LENGTH = CarrierMessage._meta.get_field("carrier_message_id").max_length or 80
_ERROR_CODE_LENGTH = Recipient._meta.get_field("error_code").max_length or 40

_FAILED_CODES = {
    DeliveryStatus.UNDELIVERABLE: "UNDELIVERABLE",
    DeliveryStatus.EXPIRED: "EXPIRED",
    DeliveryStatus.REJECTED: "REJECTED",
}
_FAILED_TEXT = {
    DeliveryStatus.UNDELIVERABLE: "The handset could not be reached",
    DeliveryStatus.EXPIRED: "The message expired before it could be delivered",
    DeliveryStatus.REJECTED: "The network rejected the message",
}


def receipt_to_dict(receipt: DeliveryReceipt) -> dict[str, Any]:
    return {
        "carrier": receipt.carrier,
        "carrier_message_id": receipt.carrier_message_id,
        "status": receipt.status.value,
        "timestamp": receipt.timestamp.isoformat(),
        "error_code": receipt.error_code,
        "raw": {str(k): str(v) for k, v in receipt.raw.items()},
        "to_the_minute": receipt.to_the_minute,
    }


def receipt_from_dict(data: dict[str, Any]) -> DeliveryReceipt:
    timestamp = parse_datetime(str(data.get("timestamp", ""))) or timezone.now()
    try:
        status = DeliveryStatus(str(data.get("status")))
    except ValueError:
        status = DeliveryStatus.UNKNOWN
    return DeliveryReceipt(
        carrier=str(data["carrier"]),
        carrier_message_id=str(data["carrier_message_id"]),
        status=status,
        timestamp=timestamp,
        error_code=data.get("error_code"),
        raw=data.get("raw") or {},
        to_the_minute=bool(data.get("to_the_minute", False)),
    )


def enqueue_receipts(receipts: Sequence[DeliveryReceipt]) -> None:
    """The receipt sink carriers use: a task on the receipts queue, or inline when the
    broker is unreachable, so a receipt is never dropped on the floor."""
    payload = [receipt_to_dict(r) for r in receipts]
    try:
        # The arguments are shown (in logs and monitors) as a count: the repr Celery builds
        # otherwise cost a fifth of each publish, and would carry the phone numbers.
        options = {"argsrepr": f"[{len(payload)} receipts]"}
        signature("sms.tasks.ingest_receipts", args=(payload,), options=options).delay()
    except Exception:  # noqa: BLE001
        logger.warning("broker unavailable; ingesting %d receipts inline", len(payload))
        receipts_ingest(receipts=receipts)


@dataclass
class IngestReport:
    matched: int = 0
    changed: int = 0
    unknown: list[DeliveryReceipt] = field(default_factory=list)


def _part_state(status: DeliveryStatus) -> str:
    if status is DeliveryStatus.DELIVERED:
        return S.DELIVERED
    if status in _FAILED_CODES:
        return S.FAILED
    return ""


def receipts_ingest(
    *, receipts: Sequence[DeliveryReceipt], keep_unmatched: bool = True
) -> IngestReport:
    """Apply ``receipts``; those that match no part are kept to be applied later unless
    ``keep_unmatched`` is False (they are already kept)."""
    report = IngestReport()
    if keep_unmatched:
        # Made storable once, as they come in (those kept for later were made so then).
        receipts = _storable(receipts)
    if not receipts:
        return report
    wanted: dict[tuple[str, str], DeliveryReceipt] = {}
    for r in receipts:
        # Of two receipts for one id, the later wins, but never a passing state over a final
        # one (a late ENROUTE must not hide the DELIVERED that came before it).
        kept = wanted.get((r.carrier, r.carrier_message_id))
        if kept is None or r.status.is_final or not kept.status.is_final:
            wanted[(r.carrier, r.carrier_message_id)] = r
    with transaction.atomic():
        parts = _parts_for(list(wanted))
        # Every recipient these parts belong to is locked, in id order, before any part
        # changes: two batches holding receipts for different parts of one recipient then
        # take turns, and the second sees the first's parts committed, so one of them always
        # finds every part final. Reading siblings without the lock let both miss it.
        with connection.cursor() as cursor:
            cursor.execute(_lock_recipients_sql(), [Array(sorted({p.recipient_id for p in parts}))])
            locked = {row[0]: row[1:] for row in cursor.fetchall()}
        found = {(p.carrier, p.carrier_message_id) for p in parts}
        report.unknown = [r for key, r in wanted.items() if key not in found]
        report.matched = len(parts)
        by_status: dict[DeliveryStatus, list[int]] = defaultdict(list)
        for part in parts:
            by_status[wanted[(part.carrier, part.carrier_message_id)].status].append(part.pk)
        # A handful of distinct states per batch: one UPDATE each, not a CASE per row. A
        # passing state never replaces a final one (a receipt that arrived late).
        with connection.cursor() as cursor:
            for status, ids in by_status.items():
                cursor.execute(_part_status_sql(final=status.is_final), [status.value, Array(ids)])
        outcome = _recipient_outcomes(parts, wanted)
        report.changed = _apply(outcome, locked)
        if report.unknown and keep_unmatched:
            # Under the carrier's lock, look again: a batch recorded since this transaction
            # began may hold these ids now. Recording checks for kept receipts under the same
            # lock after it commits, so of the two, whichever comes second sees the other.
            _lock_unmatched({r.carrier for r in report.unknown})
            late = receipts_ingest(receipts=report.unknown, keep_unmatched=False)
            report.matched += late.matched
            report.changed += late.changed
            report.unknown = late.unknown
        if report.unknown and keep_unmatched:
            UnmatchedReceipt.objects.bulk_create(
                UnmatchedReceipt(
                    carrier=r.carrier,
                    carrier_message_id=r.carrier_message_id,
                    receipt=receipt_to_dict(r),
                )
                for r in report.unknown
            )
            logger.info(
                "kept %d receipts that match no message yet: %s",
                len(report.unknown),
                [r.carrier_message_id for r in report.unknown[:20]],
            )
    return report


def _storable(receipts: Sequence[DeliveryReceipt]) -> list[DeliveryReceipt]:
    """The receipts as they can be stored: no NUL or lone surrogate in any field, the error
    code cut to its column. A receipt whose id is longer than any id we keep matches no
    message and cannot be kept for later: it is dropped, with a warning, rather than failing
    the batch (and every receipt in it) after the carrier was told they were taken."""
    kept: list[DeliveryReceipt] = []
    for receipt in receipts:
        carrier_id = storable(receipt.carrier_message_id)
        if not carrier_id or len(carrier_id) > _CARRIER_ID_LENGTH:
            logger.warning(
                "dropped a %s receipt for an id no message has: %r",
                receipt.carrier,
                carrier_id[:100],
            )
            continue
        error_code = (
            storable(receipt.error_code)[:_ERROR_CODE_LENGTH] if receipt.error_code else None
        )
        kept.append(
            replace(
                receipt,
                carrier_message_id=carrier_id,
                error_code=error_code,
                raw=storable(dict(receipt.raw)),
            )
        )
    return kept


def _lock_unmatched(carriers: set[str]) -> None:
    """A transaction lock per carrier between keeping receipts and recording their ids."""
    for carrier in sorted(carriers):
        lock_until_commit(f"receipts:{carrier}")


@functools.cache
def _unmatched_waiting() -> str:
    """Written once: it runs after every recorded batch, and finds nothing nearly always."""
    return (
        f"SELECT EXISTS (SELECT 1 FROM {table(UnmatchedReceipt)}"  # noqa: S608 - names from the model
        f" WHERE {column(UnmatchedReceipt, 'carrier')} = %s"
        f" AND {column(UnmatchedReceipt, 'carrier_message_id')} = ANY(%s::text[]))"
    )


def unmatched_recorded(*, carrier: str, keys: Sequence[str]) -> int:
    """After ids of ``carrier`` were recorded (committed): apply the receipts kept for any of
    them. Returns how many were applied."""
    if not keys:
        return 0
    with transaction.atomic():
        _lock_unmatched({carrier})
        with connection.cursor() as cursor:
            cursor.execute(_unmatched_waiting(), [carrier, Array(keys)])
            waiting = bool(cursor.fetchone()[0])
    total = 0
    while waiting and (taken := unmatched_apply(carrier=carrier, keys=keys)):
        total += taken
    return total


def unmatched_apply(
    *, carrier: str | None = None, keys: Sequence[str] | None = None, limit: int = 1000
) -> int:
    """Apply up to ``limit`` kept receipts whose ids are recorded now (of ``carrier`` and
    ``keys`` only, when given). Rows are taken with SKIP LOCKED, so sweeps running at once
    share the work. Returns how many were taken."""
    with transaction.atomic():
        rows = UnmatchedReceipt.objects.select_for_update(skip_locked=True).filter(
            Exists(
                CarrierMessage.objects.filter(
                    carrier=OuterRef("carrier"), carrier_message_id=OuterRef("carrier_message_id")
                )
            )
        )
        if carrier is not None:
            rows = rows.filter(carrier=carrier)
        if keys is not None:
            rows = rows.filter(carrier_message_id__in=list(keys))
        taken = list(rows.order_by("id")[:limit])
        if not taken:
            return 0
        receipts_ingest(
            receipts=[receipt_from_dict(row.receipt) for row in taken], keep_unmatched=False
        )
        UnmatchedReceipt.objects.filter(pk__in=[row.pk for row in taken]).delete()
    return len(taken)


def unmatched_expire() -> int:
    """Drop kept receipts older than the receipt timeout: the recipient they might have
    matched has expired by now."""
    horizon = timezone.now() - timedelta(seconds=settings.MIFUMO_RECEIPT_TIMEOUT_SECONDS)
    old = UnmatchedReceipt.objects.filter(received_at__lt=horizon)
    sample = list(old.values_list("carrier_message_id", flat=True)[:20])
    dropped, _ = old.delete()
    if dropped:
        logger.warning(
            "dropping %d receipts that matched no message within %ds: %s",
            dropped,
            settings.MIFUMO_RECEIPT_TIMEOUT_SECONDS,
            sample,
        )
    return int(dropped)


@dataclass(slots=True)
class _Part:
    """What a receipt needs of a ``CarrierMessage``."""

    pk: int
    carrier: str
    carrier_message_id: str
    recipient_id: int
    part: int
    status: str


# The statements of every batch, written once in SQL: compiling them with the ORM cost more
# than running them, batch after batch.


@functools.cache
def _parts_sql() -> str:
    part = functools.partial(column, CarrierMessage)
    names = ("id", "carrier", "carrier_message_id", "recipient", "part", "status")
    return (
        f"SELECT {', '.join(part(name) for name in names)} FROM {table(CarrierMessage)}"  # noqa: S608 - names from the model
        f" WHERE {part('carrier')} = %s AND {part('carrier_message_id')} = ANY(%s::text[])"
    )


@functools.cache
def _lock_recipients_sql() -> str:
    recipient = functools.partial(column, Recipient)
    names = ("id", "message", "account", "status")
    return (
        f"SELECT {', '.join(recipient(name) for name in names)} FROM {table(Recipient)}"  # noqa: S608 - names from the model
        f" WHERE {recipient('id')} = ANY(%s::bigint[]) ORDER BY {recipient('id')} FOR UPDATE"
    )


@functools.cache
def _part_status_sql(*, final: bool) -> str:
    part = functools.partial(column, CarrierMessage)
    sql = (
        f"UPDATE {table(CarrierMessage)} SET {part('status')} = %s"  # noqa: S608 - names from the model
        f" WHERE {part('id')} = ANY(%s::bigint[])"
    )
    if final:
        return sql
    finals = ", ".join(f"'{status.value}'" for status in DeliveryStatus if status.is_final)
    return f"{sql} AND {part('status')} NOT IN ({finals})"


@functools.cache
def _multipart_sql() -> str:
    part = functools.partial(column, CarrierMessage)
    return (
        f"SELECT DISTINCT {part('recipient')} FROM {table(CarrierMessage)}"  # noqa: S608 - names from the model
        f" WHERE {part('recipient')} = ANY(%s::bigint[]) AND {part('part')} > 1"
    )


@functools.cache
def _recipients_parts_sql() -> str:
    part = functools.partial(column, CarrierMessage)
    return (
        f"SELECT {part('id')}, {part('recipient')}, {part('status')} FROM {table(CarrierMessage)}"  # noqa: S608 - names from the model
        f" WHERE {part('recipient')} = ANY(%s::bigint[])"
    )


def _parts_for(keys: list[tuple[str, str]]) -> list[_Part]:
    by_carrier: dict[str, list[str]] = defaultdict(list)
    for carrier, carrier_id in keys:
        by_carrier[carrier].append(carrier_id)
    parts: list[_Part] = []
    with connection.cursor() as cursor:
        for carrier, ids in by_carrier.items():
            cursor.execute(_parts_sql(), [carrier, Array(ids)])
            parts.extend(_Part(*row) for row in cursor.fetchall())
    return parts


@dataclass(frozen=True)
class _Outcome:
    status: str
    error_code: str
    error_text: str
    at: datetime
    to_the_minute: bool = False


def _recipient_outcomes(
    parts: list[_Part], wanted: dict[tuple[str, str], DeliveryReceipt]
) -> dict[int, _Outcome]:
    """A recipient is delivered when every part is, and failed as soon as any part fails."""
    outcomes: dict[int, _Outcome] = {}
    receipt_of = {p.recipient_id: wanted[(p.carrier, p.carrier_message_id)] for p in parts}
    multi = _multipart_states({p.recipient_id for p in parts})
    for recipient_id, receipt in receipt_of.items():
        states = multi.get(recipient_id)
        if states is not None:
            if S.FAILED in states:
                failing = next(
                    (
                        wanted[(p.carrier, p.carrier_message_id)]
                        for p in parts
                        if p.recipient_id == recipient_id
                        and wanted[(p.carrier, p.carrier_message_id)].status in _FAILED_CODES
                    ),
                    receipt,
                )
                receipt = failing
            elif any(state != S.DELIVERED for state in states):
                continue
        state = _part_state(receipt.status)
        if not state:
            continue
        outcomes[recipient_id] = _Outcome(
            status=state,
            error_code=(receipt.error_code or _FAILED_CODES.get(receipt.status, ""))
            if state == S.FAILED
            else "",
            error_text=_FAILED_TEXT.get(receipt.status, "") if state == S.FAILED else "",
            at=receipt.timestamp,
            to_the_minute=receipt.to_the_minute,
        )
    return outcomes


def _multipart_states(recipient_ids: set[int]) -> dict[int, list[str]]:
    """Part states of recipients with more than one part, including parts not in this batch."""
    with connection.cursor() as cursor:
        cursor.execute(_multipart_sql(), [Array(sorted(recipient_ids))])
        multi_ids = sorted(row[0] for row in cursor.fetchall())
        if not multi_ids:
            return {}
        cursor.execute(_recipients_parts_sql(), [Array(multi_ids)])
        rows = cursor.fetchall()
    # Read after this batch's parts were written, its recipients locked: every part as it is.
    states: dict[int, list[str]] = defaultdict(list)
    for _pk, recipient_id, raw in rows:
        try:
            states[recipient_id].append(_part_state(DeliveryStatus(raw)) if raw else "")
        except ValueError:
            states[recipient_id].append("")
    return states


def _write_outcomes(outcomes: dict[int, _Outcome], now: datetime) -> None:
    """One statement for the batch, each row's values from arrays: an ORM bulk_update builds
    a CASE per column and row and cost more than all the rest of the ingestion.

    A delivery time written to the minute only is never earlier than the acknowledgement of
    the submit (``sent_at``): the handset cannot have had it before the SMSC took it, and the
    minute's truncation would otherwise date it up to 59 s too early. A finer time is kept
    as the carrier wrote it."""
    if not outcomes:
        return
    ids = list(outcomes)
    values = [outcomes[rid] for rid in ids]
    sent_at = column(Recipient, "sent_at")
    update_from_arrays(
        Recipient,
        ids,
        {
            "status": [o.status for o in values],
            "error_code": [o.error_code for o in values],
            "error_message": [o.error_text for o in values],
        },
        same={"updated_at": now},
        computed={
            "delivered_at": "CASE WHEN v.to_the_minute "
            f"THEN GREATEST(v.delivered_at, r.{sent_at}) ELSE v.delivered_at END"
        },
        arrays={
            "delivered_at": (
                "timestamptz",
                [o.at if o.status == S.DELIVERED else None for o in values],
            ),
            "to_the_minute": ("boolean", [o.to_the_minute for o in values]),
        },
    )


def _apply(outcomes: dict[int, _Outcome], locked: dict[int, tuple[Any, ...]]) -> int:
    """``locked``: the recipients' (message, account, status), their rows locked in id order,
    so batches that overlap (receipts, the expiry sweep) never wait on each other in a cycle."""
    if not outcomes:
        return 0
    rows = [
        (recipient_id, locked[recipient_id][0], locked[recipient_id][1])
        for recipient_id in sorted(outcomes)
        if recipient_id in locked and locked[recipient_id][2] in (S.SENT, S.SUBMITTING)
    ]
    now = timezone.now()
    groups: dict[tuple[str, int, str], list[int]] = defaultdict(list)
    outcome_of: dict[int, _Outcome] = {}
    for recipient_id, message_id, account_id in rows:
        outcome = outcomes[recipient_id]
        outcome_of[recipient_id] = outcome
        groups[(message_id, account_id, outcome.status)].append(recipient_id)
    _write_outcomes(outcome_of, now)
    send_status_changes(
        Recipient,
        [
            StatusChange(message_id, account_id, status, ids)
            for (message_id, account_id, status), ids in groups.items()
        ],
    )
    return len(rows)
