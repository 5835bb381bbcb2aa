"""Delivering many webhooks at once: a worker claims due deliveries in batches (one
``FOR UPDATE SKIP LOCKED`` statement, with the lease), sends them concurrently over its
sending threads and kept-alive connections, and records the attempts of many in one
transaction, so one slow receiver holds up one thread, not the batch.

A drain (``delivery_drain``) takes whatever is due until none is left; a batch task
(``delivery_enqueue_each``) takes the deliveries ``webhooks.outbox`` fanned out to it. Each
delivery is signed, sent and judged as ``webhooks.delivery`` does for one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mifumo.api.fields import iso
from mifumo.postgresql.base import Array
from webhooks import transport
from webhooks.delivery import (
    COUNTDOWN_LIMIT,
    attempt_fields,
    fail_unsent,
    for_sending,
    lease,
    send_request,
    signed_headers,
)
from webhooks.endpoints import endpoint_disable
from webhooks.models import Delivery, DeliveryAttempt, EventType
from webhooks.outbox import clear_drain_signal, enqueue_after_commit, queue_drain
from webhooks.signals import attempts_recorded

logger = logging.getLogger(__name__)

# A drain stops claiming after this many seconds (well within its task's time limit, which
# is this plus the attempt's deadline plus a margin away) and queues a successor.
DRAIN_SECONDS = 10
# Results are recorded in one transaction per this many, or per this many seconds: a slow
# receiver's delivery does not keep the others' results from being recorded.
RECORD_BATCH = 200
RECORD_INTERVAL = 0.2


@dataclass
class _Job:
    delivery: Delivery
    token: str
    url: str
    body: bytes
    headers: dict[str, str]
    retry: bool
    # Not sent if no thread takes it up by then (time.monotonic()): see _deliver_concurrently.
    send_by: float
    # Why it cannot be sent at all: the attempt fails with this.
    error: str = ""


_senders: dict[int, ThreadPoolExecutor] = {}


def _sender_pool() -> ThreadPoolExecutor:
    """This process's sending threads (never inherited through a fork)."""
    pid = os.getpid()
    pool = _senders.get(pid)
    if pool is None:
        pool = _senders[pid] = ThreadPoolExecutor(
            settings.MIFUMO_WEBHOOK_CONCURRENCY, thread_name_prefix="webhook-send"
        )
    return pool


_CLAIM = """
UPDATE {table} SET locked_until = %s, lock_token = %s
WHERE id IN (
    SELECT id FROM {table}
    WHERE status = %s AND next_attempt_at <= %s
        AND (locked_until IS NULL OR locked_until < %s) {only}
    ORDER BY next_attempt_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


def _claim(ids: Sequence[str] | None, limit: int) -> tuple[list[str], str]:
    """Lease up to ``limit`` due and free deliveries (of ``ids`` only, if given) in one
    statement; rows another worker is claiming right now are skipped, not waited for."""
    now = timezone.now()
    token = uuid.uuid4().hex
    params: list[Any] = [now + lease(), token, Delivery.Status.PENDING.value, now, now]
    if ids is not None:
        params.append(list(ids))
    params.append(limit)
    sql = _CLAIM.format(
        table=connection.ops.quote_name(Delivery._meta.db_table),
        only="AND id = ANY(%s::text[])" if ids is not None else "",
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()], token


def _prepare(ids: Sequence[str], token: str, send_by: float) -> list[_Job]:
    """The signed requests for claimed deliveries; those of disabled endpoints fail unsent."""
    jobs: list[_Job] = []
    memo: dict[tuple[Any, ...], Any] = {}
    for delivery in for_sending().filter(pk__in=ids):
        endpoint = delivery.endpoint
        is_test = delivery.event.type == EventType.TEST
        if endpoint is not None and not endpoint.active and not is_test:
            fail_unsent(delivery.pk, token, endpoint)
            continue
        url = endpoint.url if endpoint is not None else delivery.url
        body = delivery.event.body.encode()
        job = _Job(delivery, token, url, body, {}, not is_test, send_by)
        try:
            job.headers = signed_headers(delivery, body, memo)
        except Exception as exc:
            # One delivery that cannot be signed (a secret that no longer decrypts) fails
            # its attempt, on the retry schedule, rather than the batch it came in.
            logger.exception("cannot prepare webhook delivery %s", delivery.pk)
            job.error = f"Not sent: {type(exc).__name__} while signing"
        jobs.append(job)
    return jobs


def _timed_send(job: _Job) -> tuple[datetime, transport.Outcome] | None:
    if time.monotonic() > job.send_by:
        return None
    started_at = timezone.now()
    if job.error:
        return started_at, transport.Outcome(None, 0.0, job.error, "")
    return started_at, send_request(job.url, job.body, job.headers)


_UPDATE_LEASED = """
UPDATE {table} AS d SET
    attempts = v.attempts, url = v.url, last_attempt_at = v.last_attempt_at,
    last_status_code = v.last_status_code, last_latency_ms = v.last_latency_ms,
    last_error = v.last_error, last_response = v.last_response,
    locked_until = NULL, lock_token = '', status = v.status,
    next_attempt_at = v.next_attempt_at,
    completed_at = CASE WHEN v.final THEN v.completed_at ELSE d.completed_at END,
    enqueued_at = CASE WHEN v.final THEN d.enqueued_at ELSE v.enqueued_at END
FROM unnest(
    %s::text[], %s::text[], %s::int[], %s::text[], %s::timestamptz[], %s::int[],
    %s::float8[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::boolean[],
    %s::timestamptz[], %s::timestamptz[]
) AS v(
    id, token, attempts, url, last_attempt_at, last_status_code, last_latency_ms,
    last_error, last_response, status, next_attempt_at, final, completed_at, enqueued_at
)
WHERE d.id = v.id AND d.lock_token = v.token
RETURNING d.id
"""


def _update_leased(rows: Sequence[tuple[str, str, dict[str, Any]]]) -> set[str]:
    """Apply each attempt's fields to its delivery, in one statement of a fixed size, where
    the lease is still held; the ids updated."""
    columns: list[list[Any]] = [Array() for _ in range(14)]
    for delivery_id, token, f in rows:
        final = "completed_at" in f
        values = (
            delivery_id,
            token,
            f["attempts"],
            f["url"],
            f["last_attempt_at"],
            f["last_status_code"],
            f["last_latency_ms"],
            f["last_error"],
            f["last_response"],
            str(f.get("status", Delivery.Status.PENDING)),
            f["next_attempt_at"],
            final,
            f.get("completed_at"),
            f.get("enqueued_at"),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    sql = _UPDATE_LEASED.format(table=connection.ops.quote_name(Delivery._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)
        return {row[0] for row in cursor.fetchall()}


_INSERT_ATTEMPTS = "INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays})"
# Each attempt column with the type its array is cast to.
_ATTEMPT_COLUMNS = {
    "delivery_id": "text",
    "number": "int",
    "started_at": "timestamptz",
    "url": "text",
    "succeeded": "boolean",
    "status_code": "int",
    "latency_ms": "float8",
    "error": "text",
    "response_head": "text",
}


def _insert_attempts(attempts: Sequence[DeliveryAttempt]) -> None:
    """The attempt rows in one statement of a fixed size."""
    if not attempts:
        return
    columns = [Array(getattr(a, name) for a in attempts) for name in _ATTEMPT_COLUMNS]
    table = connection.ops.quote_name(DeliveryAttempt._meta.db_table)
    arrays = ", ".join(f"%s::{kind}[]" for kind in _ATTEMPT_COLUMNS.values())
    sql = _INSERT_ATTEMPTS.format(table=table, columns=", ".join(_ATTEMPT_COLUMNS), arrays=arrays)
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)


def _record_many(results: Sequence[tuple[_Job, datetime, transport.Outcome]]) -> None:
    """``_record`` for many attempts in one transaction: one UPDATE, one INSERT."""
    rows: list[tuple[str, str, dict[str, Any]]] = []
    attempts: list[DeliveryAttempt] = []
    follow_ups: list[tuple[Delivery, datetime, float | None, bool]] = []
    for job, started_at, outcome in results:
        fields, attempt, delay, gone = attempt_fields(
            job.delivery, job.url, started_at, outcome, retry=job.retry
        )
        rows.append((job.delivery.pk, job.token, fields))
        attempts.append(attempt)
        follow_ups.append((job.delivery, started_at, delay, gone))
    with transaction.atomic():
        updated = _update_leased(rows)
        missing = [pk for pk, _, _ in rows if pk not in updated]
        kept = updated | set(Delivery.objects.filter(pk__in=missing).values_list("pk", flat=True))
        for pk in missing:
            if pk not in kept:
                logger.info("webhook delivery %s was deleted while it was being sent", pk)
        written = [a for a in attempts if a.delivery_id in kept]
        _insert_attempts(written)
        succeeded = sum(1 for a in written if a.succeeded)
        attempts_recorded.send(
            sender=DeliveryAttempt, succeeded=succeeded, failed=len(written) - succeeded
        )
        for delivery, started_at, delay, gone in follow_ups:
            if gone and delivery.endpoint_id is not None and delivery.pk in kept:
                endpoint_disable(
                    endpoint_id=delivery.endpoint_id,
                    reason=f"The receiver answered 410 Gone on {iso(started_at)}",
                )
            if delivery.pk in updated and delay is not None and delay <= COUNTDOWN_LIMIT:
                enqueue_after_commit([delivery.pk], countdown=delay)


def _release(jobs: Sequence[_Job]) -> None:
    """Give back the leases of claimed deliveries that were not sent: due again at once."""
    for token in {job.token for job in jobs}:
        Delivery.objects.filter(
            pk__in=[job.delivery.pk for job in jobs if job.token == token], lock_token=token
        ).update(locked_until=None, lock_token="")


_Sent = Future[tuple[datetime, transport.Outcome] | None]


def _deliver_concurrently(
    claim: Callable[[int], tuple[list[str], str]], more: Callable[[], bool]
) -> tuple[int, bool]:
    """Send claimed deliveries over this process's sending threads, claiming more while
    ``more()`` says so and there is room, and record results as they come in (so one slow
    receiver holds one thread, not the batch). The number of attempts made, and whether
    deliveries may be left that a later drain should take.

    Claims stop after DRAIN_SECONDS, and a claimed delivery no thread has taken up after
    twice that is given back unsent: every attempt ends within the task's time limit and
    its delivery's lease (``lease``), however slow the receivers."""
    capacity = settings.MIFUMO_WEBHOOK_CONCURRENCY
    pool = _sender_pool()
    claim_until = time.monotonic() + DRAIN_SECONDS
    send_by = claim_until + DRAIN_SECONDS
    finished: queue.SimpleQueue[_Sent] = queue.SimpleQueue()
    in_flight: dict[_Sent, _Job] = {}
    results: list[tuple[_Job, datetime, transport.Outcome]] = []
    unsent: list[_Job] = []
    recorded_at = time.monotonic()
    sent = 0
    left_over = False
    while True:
        # Up to eight requests per thread are kept ready, so no thread waits for a claim,
        # claimed at least half of that at a time.
        room = capacity * 8 - len(in_flight)
        claiming = more()
        if claiming and time.monotonic() >= claim_until:
            left_over, claiming = True, False
        if room >= capacity * 4 and claiming:
            ids, token = claim(room)
            if ids:
                for job in _prepare(ids, token, send_by):
                    future = pool.submit(_timed_send, job)
                    in_flight[future] = job
                    future.add_done_callback(finished.put)
        if in_flight:
            done: list[_Sent] = []
            with contextlib.suppress(queue.Empty):
                done.append(finished.get(timeout=RECORD_INTERVAL))
                while len(done) < RECORD_BATCH:
                    done.append(finished.get_nowait())
            for future in done:
                job = in_flight.pop(future)
                try:
                    result = future.result()
                except Exception as exc:
                    logger.exception("webhook delivery %s failed to send", job.delivery.pk)
                    error = f"Error: {exc}"[:500]
                    result = timezone.now(), transport.Outcome(None, 0.0, error, "")
                if result is None:
                    unsent.append(job)
                else:
                    results.append((job, *result))
        elif not claiming:
            break
        if results and (
            len(results) >= RECORD_BATCH
            or not in_flight
            or time.monotonic() - recorded_at >= RECORD_INTERVAL
        ):
            _record_many(results)
            sent += len(results)
            results = []
            recorded_at = time.monotonic()
    if unsent:
        _release(unsent)
        left_over = True
    return sent, left_over


def delivery_drain() -> int:
    """Send every due delivery nobody holds, claiming them in batches (``FOR UPDATE SKIP
    LOCKED``, with the lease) until none is left; several drains share the work. Stops
    claiming after DRAIN_SECONDS and queues another drain if there may be more. The number
    of attempts made."""
    clear_drain_signal()
    empty = False

    def claim(room: int) -> tuple[list[str], str]:
        nonlocal empty
        ids, token = _claim(None, room)
        empty = len(ids) < room
        return ids, token

    sent, left_over = _deliver_concurrently(claim, lambda: not empty)
    if left_over:
        queue_drain()
    return sent


def delivery_enqueue_each(*, delivery_ids: Sequence[str]) -> int:
    """Send those of ``delivery_ids`` that are due and free, concurrently
    (``_deliver_concurrently``); the number of attempts made."""
    ids = list(delivery_ids)

    def claim(room: int) -> tuple[list[str], str]:
        nonlocal ids
        batch, ids = ids[:room], ids[room:]
        return _claim(batch, len(batch))

    sent, left_over = _deliver_concurrently(claim, lambda: bool(ids))
    if left_over:
        queue_drain()
    return sent
