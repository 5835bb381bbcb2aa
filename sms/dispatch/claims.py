"""Claims: the dispatcher's rounds. Queued recipients move ``queued -> submitting`` in one
conditional statement with ``SKIP LOCKED``, so two workers never submit one recipient; the
claimed ones are routed and delivered (``sms.dispatch.failover``) until none is left or every
route is in temporary trouble.

``queued_dispatch`` (the ``dispatch_queued`` task, woken by ``sms.dispatch.wake``) claims
recipients of any message; ``message_dispatch`` (the ``dispatch_message`` task, kept for tasks
queued by earlier versions) those of one message.

Lingering: a round that claimed less than a full batch is followed by a short wait
(``linger``, ``MIFUMO_DISPATCH_LINGER_MS`` for the task) before the next claim, so that the
sends committed meanwhile share one claim, one carrier call and one recording transaction
instead of paying for each alone. While it lingers the "dispatch pending" flag stays set, so
those sends publish no task of their own. A full batch never waits.

A run that lingers finds work at almost every claim under steady traffic, and would hold its
worker process for as long as the traffic lasts, while receipts and webhooks wait for a free
one (and a send finding the flag expired meanwhile would start a second such run). So the
task gives each run a time (``run_for``, half the flag's TTL). Past it, the run clears the
flag and makes its last look, as it does when a claim finds nothing: it ends at the first
claim after the clear that is not a full batch. That claim took every queued recipient it
could see, and a send committed after it finds the flag clear (or set by a caller who
published a task since), so the proof in ``sms.dispatch.wake`` holds unchanged; the next
send wakes a new run, queued behind the tasks already waiting.

Fairness: each batch of ``queued_dispatch`` takes most of its recipients oldest first (id
order) and ``MIFUMO_DISPATCH_NEWEST_PERCENT`` of them newest first. A one-recipient OTP queued
behind a 100,000-recipient bulk message is in the next batch rather than after the whole bulk;
the oldest-first part keeps the bulk (and anything between) moving. Under more new traffic
than that share takes per batch, the excess waits its turn in id order, as before.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from mifumo.db import column, columns, read_models, table
from sms import routing
from sms.dispatch.failover import Item, deliver
from sms.dispatch.record import RETRY_SECONDS, DispatchReport
from sms.dispatch.wake import wake_clear, wake_helper
from sms.models import Message, Recipient

logger = logging.getLogger(__name__)
S = Recipient.Status


def recipient_texts(message: Message, recipient_ids: Sequence[int]) -> dict[int, str]:
    """The rendered texts of a personalised message's recipients (none for a plain one)."""
    if not message.personalised:
        return {}
    return dict(Recipient.objects.filter(id__in=recipient_ids).values_list("id", "text"))


def claim(message_id: str, limit: int) -> list[tuple[int, str]]:
    """Claim up to ``limit`` queued recipients of one message: ``(id, phone)`` in id order."""
    return _claim(message_id, limit, timezone.now())


def _claim(message_id: str, limit: int, now: datetime) -> list[tuple[int, str]]:
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
        claimed_at = timezone.now()
        picked = _claim(message.id, settings.MIFUMO_DISPATCH_BATCH, claimed_at)
        if not picked:
            break
        texts = recipient_texts(message, [recipient_id for recipient_id, _ in picked])
        items = [
            Item(
                recipient_id,
                phone,
                message,
                route,
                text=texts.get(recipient_id, ""),
                claimed_at=claimed_at,
            )
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


# Oldest first and newest first, each FOR UPDATE SKIP LOCKED, claimed in the same statement.
# Both scans walk the partial index recipient_queued (status = 'queued', by id); recipients
# in backoff (not_before in the future) are passed over. The statuses stand in the statement
# as literals rather than parameters: a plan made for any status (a prepared statement's
# generic plan) cannot use an index that holds only the queued ones.
@functools.cache
def _claim_queued_sql() -> str:
    recipient = table(Recipient)
    id_, status, not_before, claimed_at, updated_at, attempts, message, phone, text = (
        column(Recipient, name)
        for name in (
            "id",
            "status",
            "not_before",
            "claimed_at",
            "updated_at",
            "attempts",
            "message",
            "phone",
            "text",
        )
    )
    # Quoted as the schema editor quotes the partial index's condition.
    quote = connection.schema_editor().quote_value
    queued, submitting = quote(S.QUEUED.value), quote(S.SUBMITTING.value)
    due = f"{status} = {queued} AND ({not_before} IS NULL OR {not_before} <= %(now)s)"
    return f"""
WITH oldest AS (
    SELECT {id_} FROM {recipient}
    WHERE {due}
    ORDER BY {id_} LIMIT %(oldest)s
    FOR UPDATE SKIP LOCKED
), newest AS (
    SELECT {id_} FROM {recipient}
    WHERE {due}
    ORDER BY {id_} DESC LIMIT %(newest)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {recipient} AS r
SET {status} = {submitting}, {claimed_at} = %(now)s, {updated_at} = %(now)s,
    {attempts} = r.{attempts} + 1
WHERE r.{id_} IN (SELECT {id_} FROM oldest UNION SELECT {id_} FROM newest)
    AND r.{status} = {queued}
RETURNING r.{id_}, r.{message}, r.{phone}, r.{text}, r.{claimed_at}
"""  # noqa: S608 - names from the model, statuses quoted


def claim_queued(limit: int) -> list[tuple[int, str, str, str, datetime]]:
    """Claim up to ``limit`` queued recipients of any message whose backoff has passed:
    ``(id, message_id, phone, text, claimed_at)`` in id order. Most are the oldest; a share
    (``MIFUMO_DISPATCH_NEWEST_PERCENT``) the newest (see the module's docstring)."""
    newest = limit * settings.MIFUMO_DISPATCH_NEWEST_PERCENT // 100
    with connection.cursor() as cursor:
        cursor.execute(
            _claim_queued_sql(),
            {"now": timezone.now(), "oldest": max(limit - newest, 1), "newest": newest},
        )
        rows: list[tuple[int, str, str, str, datetime]] = cursor.fetchall()
    return sorted(rows)


@functools.cache
def _messages_by_id() -> str:
    return (
        f"SELECT {columns(Message)} FROM {table(Message)} WHERE {column(Message, 'id')} = ANY(%s)"  # noqa: S608 - names from the model
    )


def queued_items(rows: Sequence[tuple[int, str, str, str, datetime]]) -> list[Item]:
    """Claimed rows as routed ``Item``s: their messages loaded in one query, each message's
    recipients routed by its own ``is_test``."""
    # Raw rather than in_bulk: this runs for every claimed batch, and compiling the ORM's
    # query would cost more than running it.
    messages = {
        message.pk: message
        for message, _ in read_models(Message, _messages_by_id(), [list({row[1] for row in rows})])
    }
    by_message: dict[str, list[tuple[int, str]]] = {}
    for recipient_id, message_id, phone, _, _ in rows:
        by_message.setdefault(message_id, []).append((recipient_id, phone))
    row_of = {row[0]: row for row in rows}  # each recipient's text and claim token
    return [
        Item(
            recipient_id,
            phone,
            message,
            route,
            text=row_of[recipient_id][3],
            claimed_at=row_of[recipient_id][4],
        )
        for message_id, pairs in by_message.items()
        for message in (messages[message_id],)
        for route, routed in routing.group_by_route(pairs, is_test=message.is_test).items()
        for recipient_id, phone in routed
    ]


def queued_dispatch(linger: float = 0.0, run_for: float | None = None) -> DispatchReport:
    """Claim and deliver queued recipients of any message until none is left, waiting
    ``linger`` seconds after each part batch for more to gather; after ``run_for`` seconds,
    make the last look at once (see the module's docstring).

    The "dispatch pending" flag is cleared before the claim that ends the run, never after
    it (see ``sms.dispatch.wake``): a send committed after that claim sets the flag again and
    publishes a new task. Once cleared, the run ends at the first claim that is not a full
    batch: that claim took every queued recipient it could see. A round whose every
    recipient went back to queued (temporary trouble on every route it touched) ends the run
    too, after the same last look: the caller schedules a run for when the first of them is
    due (``report.retry_at``), and the flag is cleared so that new sends still wake a
    dispatcher at once."""
    report = DispatchReport()
    limit = settings.MIFUMO_DISPATCH_BATCH
    until = None if run_for is None else time.monotonic() + run_for
    cleared = False
    while True:
        rows = claim_queued(limit)
        if not rows and not cleared:
            wake_clear()
            cleared = True
            rows = claim_queued(limit)
        if not rows:
            break
        if len(rows) >= limit:
            wake_helper()  # more is waiting: let another worker process share it
        items = queued_items(rows)
        outcome = deliver(items=items)
        report.add(outcome)
        if outcome.requeued == len(items):
            if cleared:
                break
            # Temporary trouble on every route of this round: end the run, but only after a
            # last look made after the clear (a send committed during the round found the
            # flag set and published nothing). What was turned away waits out its backoff, so
            # the last look takes only what came since.
            wake_clear()
            cleared = True
            continue
        if len(rows) < limit:
            if cleared:
                break  # the last look took all there was
            if until is not None and time.monotonic() >= until:
                wake_clear()  # time is up: the next claim is the last look
                cleared = True
            elif linger > 0:
                wait = linger if until is None else min(linger, until - time.monotonic())
                time.sleep(max(0.0, wait))
    return report
