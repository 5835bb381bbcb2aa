"""Failover: offer claimed recipients to the carriers of their route, in order.

First, one look at what changed since the message was accepted: a recipient whose phone
opted out is failed as ``OPTED_OUT``, one of an account suspended meanwhile as
``ACCOUNT_SUSPENDED``; both are refunded, not offered to any carrier.

Claimed recipients are grouped by route (``sms.routing``) and offered to the route's carriers
in order: what a carrier accepts or rejects for good is recorded, and what it could not take
for now (the carrier raised a temporary ``CarrierError``, or rejected a recipient
temporarily) moves on to the next carrier of the route. Recipients that every carrier of
their route turned away for now go back to ``queued`` and are retried later. Every offer is
one ``SubmitAttempt`` row.

Carriers are called outside any transaction, under their throughput cap (``sms.throttle``),
for the recipients whose claim this dispatcher still holds (``sms.dispatch.lease``);
results are recorded in one transaction per batch (``sms.dispatch.record``) and
``carrier.after_recorded()`` runs after each recording. Carriers that submit from a process
of their own (SMPP binds, see ``run_smpp``) are not called from a worker: their recipients
are handed off (``sms.dispatch.handoffs``). ``deliver`` serves the workers; ``deliver_here``
serves such a carrier's own process.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from contacts.models import Contact
from integration.models import Account
from mifumo.db import column, insert_from_arrays, table
from sms import metrics, routing
from sms.carriers import get_carrier
from sms.carriers.base import BaseCarrier, CarrierError, OutboundSms, SubmitResult
from sms.dispatch.handoffs import handoff
from sms.dispatch.lease import lease_keep
from sms.dispatch.record import DispatchReport, EarlyRecorder, fail_unsent, results_record
from sms.models import Message, Recipient, SubmitAttempt
from sms.throttle import Throttle, carrier_rate, throttle_for

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Item:
    """One claimed recipient on its way through the carriers of its route."""

    recipient_id: int
    phone: str
    message: Message
    carriers: routing.Route  # still to try, the next one first
    last_carrier: str = ""
    last_result: SubmitResult | None = None
    text: str = ""  # the recipient's own text when the message is personalised
    # The claim's token (``sms.dispatch.lease``); None for items not claimed under a lease.
    claimed_at: datetime | None = None

    def outbound(self) -> OutboundSms:
        return OutboundSms(
            recipient_id=self.recipient_id,
            message_id=self.message.id,
            to=self.phone,
            sender_id=self.message.sender_id,
            text=self.text or self.message.text,
        )


def deliver(*, items: list[Item]) -> DispatchReport:
    """Offer claimed recipients to their carriers in route order; recipients of a carrier
    that runs in a process of its own are handed off to it."""
    return _deliver(items, here=None, stop=None)


def deliver_here(
    *, carrier: str, items: list[Item], stop: Callable[[], bool] | None = None
) -> DispatchReport:
    """``deliver`` in the own process of ``carrier``: it is called rather than handed off
    to, and when ``stop()`` turns true between two of its batches the recipients not yet
    sent to it are handed back to it for the next process."""
    return _deliver(items, here=carrier, stop=stop)


def _deliver(
    items: list[Item], *, here: str | None, stop: Callable[[], bool] | None
) -> DispatchReport:
    report = DispatchReport()
    items = _drop_unsendable(items, report)
    turned_away: list[Item] = []
    while items:
        by_carrier: dict[str, list[Item]] = defaultdict(list)
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


# Why a claimed recipient must not be sent after all: (error code, its text, ledger note).
_UNSENDABLE = {
    "suspended": (
        "ACCOUNT_SUSPENDED",
        "The account was suspended before the message was sent",
        "account suspended before they were sent",
    ),
    "opted_out": (
        "OPTED_OUT",
        "The phone opted out before the message was sent",
        "opted out before they were sent",
    ),
}


def _drop_unsendable(items: list[Item], report: DispatchReport) -> list[Item]:
    """The last look before any carrier is called, one statement for the batch: recipients
    whose phone opted out since their message was accepted (a STOP while a big send waits its
    turn under a carrier's cap, or in a carrier process's backlog), or whose account has been
    suspended since, are failed and refunded; the rest go on."""
    if not items:
        return items
    with connection.cursor() as cursor:
        cursor.execute(_unsendable_sql(), [[item.recipient_id for item in items]])
        found = dict(cursor.fetchall())
    if not found:
        return items
    for reason, (code, text, note) in _UNSENDABLE.items():
        stopped: dict[str, tuple[Message, list[int]]] = {}
        for item in items:
            if found.get(item.recipient_id) == reason:
                entry = stopped.setdefault(item.message.id, (item.message, []))
                entry[1].append(item.recipient_id)
        if stopped:
            report.failed += fail_unsent(stopped.values(), code, text, note)
    return [item for item in items if item.recipient_id not in found]


@functools.cache
def _unsendable_sql() -> str:
    """Which of the given recipients must not be sent, and why: the account suspended, or the
    phone opted out (a probe of the contacts' unique index per recipient; ids rather than
    numbers: cheaper for the driver to send)."""
    r_id, r_account, r_phone = (column(Recipient, name) for name in ("id", "account", "phone"))
    c_account, c_phone, c_out = (
        column(Contact, name) for name in ("account", "phone_number", "opted_out")
    )
    a_id, a_status = column(Account, "id"), column(Account, "status")
    active = Account.Status.ACTIVE.value
    return (
        f"SELECT r.{r_id}, CASE WHEN a.{a_status} <> '{active}' THEN 'suspended' "  # noqa: S608 - names from the models
        f"ELSE 'opted_out' END FROM {table(Recipient)} AS r "
        f"JOIN {table(Account)} AS a ON a.{a_id} = r.{r_account} "
        f"WHERE r.{r_id} = ANY(%s) AND (a.{a_status} <> '{active}' OR EXISTS "
        f"(SELECT 1 FROM {table(Contact)} AS c WHERE c.{c_account} = r.{r_account} "
        f"AND c.{c_phone} = r.{r_phone} AND c.{c_out}))"
    )


def _offer(
    name: str,
    group: list[Item],
    report: DispatchReport,
    stop: Callable[[], bool] | None,
    *,
    own: bool = False,
) -> tuple[list[Item], list[Item]]:
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
    moved_on: list[Item] = []
    pending = group
    while pending:
        if stop is not None and stop():
            return moved_on, pending
        # A paced bind still takes about a second's worth at a time, so a stop is prompt.
        count = _within(carrier_rate(name), pending) if paced else _admitted(throttle, pending)
        batch, pending = pending[:count], pending[count:]
        # Right before the call, after any wait for the cap: only what this dispatcher holds.
        lost = lease_keep([*batch, *pending])
        if lost:
            batch = [item for item in batch if item.recipient_id not in lost]
            pending = [item for item in pending if item.recipient_id not in lost]
            if not batch:
                continue
        error, refused = _submit(name, carrier, batch, report)
        moved_on.extend(refused)
        if error is not None and not error.permanent:
            # The carrier is down for now: the rest of the group need not wait for it too.
            moved_on.extend(_skip(name, pending, error))
            break
    return moved_on, []


def _within(parts: int, pending: list[Item]) -> int:
    """How many of ``pending`` (at least one) fit in ``parts`` message parts."""
    total = 0
    for count, item in enumerate(pending):
        total += item.message.segments
        if total > parts:
            return max(1, count)
    return len(pending)


def _admitted(throttle: Throttle | None, pending: list[Item]) -> int:
    if throttle is None:
        return len(pending)
    return throttle.admit([item.message.segments for item in pending])


def _submit(
    name: str, carrier: BaseCarrier, batch: list[Item], report: DispatchReport
) -> tuple[CarrierError | None, list[Item]]:
    """One carrier call for ``batch`` and its recording; returns the batch-wide error, if any,
    and the items the carrier refused for now."""
    outbound = [item.outbound() for item in batch]
    started_at = timezone.now()
    started = time.monotonic()
    error: CarrierError | None = None
    early = EarlyRecorder(name, {item.recipient_id: item.message for item in batch}, report)
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
    refused: list[Item] = []
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
        outcome = results_record(
            ((messages[message_id], name, settled) for message_id, settled in final.items()),
            {item.recipient_id: item.claimed_at for item in batch},
        )
        report.submitted += outcome.submitted
        report.failed += outcome.failed
        _record_attempts(name, batch, results, error, latency_ms, started_at)
    carrier.after_recorded()
    return error, refused


def _skip(name: str, items: list[Item], error: CarrierError) -> list[Item]:
    for item in items:
        item.last_carrier = name
        item.last_result = SubmitResult.rejected(
            item.outbound(), error.code, str(error)[:255], permanent=False
        )
        item.carriers = item.carriers[1:]
    return items


def _record_attempts(
    name: str,
    batch: list[Item],
    results: Sequence[SubmitResult],
    error: CarrierError | None,
    latency_ms: int,
    started_at: datetime,
) -> None:
    by_message: dict[str, list[Item]] = defaultdict(list)
    for item in batch:
        by_message[item.message.id].append(item)
    outcome = {result.recipient_id: result for result in results}
    # One row per message, each column's values as an array: one statement.
    rows: dict[str, list[Any]] = {
        "message": [],
        "recipient_count": [],
        "accepted": [],
        "rejected": [],
        "error_code": [],
    }
    for message_id, items in by_message.items():
        mine = [outcome[item.recipient_id] for item in items if item.recipient_id in outcome]
        accepted = sum(1 for result in mine if result.accepted)
        codes = Counter(result.error_code or "" for result in mine if not result.accepted)
        code = error.code if error is not None else (codes.most_common(1)[0][0] if codes else "")
        rows["message"].append(message_id)
        rows["recipient_count"].append(len(items))
        rows["accepted"].append(accepted)
        rows["rejected"].append(len(items) - accepted)
        rows["error_code"].append(code[:40])
    if by_message:
        insert_from_arrays(
            SubmitAttempt,
            rows,
            same={"carrier": name, "latency_ms": latency_ms, "created_at": started_at},
        )


def _turn_away(items: list[Item], report: DispatchReport) -> None:
    """Every carrier of their route refused these for now: back to queued (or failed once
    they used up their attempts)."""
    by_message: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_message[item.message.id].append(item)
    outcome = results_record(
        (
            (
                group[0].message,
                group[0].last_carrier,
                [item.last_result for item in group if item.last_result is not None],
            )
            for group in by_message.values()
        ),
        {item.recipient_id: item.claimed_at for item in items},
    )
    report.failed += outcome.failed
    report.requeued += outcome.requeued
    report.requeued_messages |= outcome.requeued_messages
    report.retry_from(outcome.retry_at)
