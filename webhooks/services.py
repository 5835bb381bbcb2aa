"""Writes for webhooks: endpoints and secrets, the events outbox, and delivering.

Delivering follows one rule: the receiver is never called inside a transaction, and a
delivery is claimed (a lease taken with a conditional UPDATE) before it is sent, so two
workers never send it at the same time. Workers claim many due deliveries at once and send
them concurrently over kept-alive connections (``_deliver_concurrently``), recording the
attempts of many in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from integration import keys
from integration.models import Account, ApiKey
from integration.signals import LowBalance
from mifumo.api.fields import iso, money
from mifumo.db import atomic_unless_nested
from mifumo.errors import DomainError, ErrorCode
from sms.models import Message
from sms.signals import StatusChange
from webhooks import security, selectors, signing, transport
from webhooks.models import (
    SUBSCRIBABLE_EVENTS,
    AccountSigningSecret,
    AccountTestSigningSecret,
    Delivery,
    DeliveryAttempt,
    Endpoint,
    Event,
    EventType,
    SigningSecretFields,
)
from webhooks.signals import attempts_recorded

logger = logging.getLogger(__name__)

STATUS_EVENTS = {
    "sent": EventType.SENT,
    "delivered": EventType.DELIVERED,
    "failed": EventType.FAILED,
}
# Recipients per event: a 10,000-recipient send becomes 20 events, not one huge body.
RECIPIENTS_PER_EVENT = 500
# Rows per INSERT: a large batch stays a few statements of bounded size.
INSERT_BATCH = 1000
# Deliveries per batch task: a batch's deliveries go on the queue as a few tasks rather than
# one each, and are sent concurrently by whichever workers take them.
FAN_OUT_SIZE = 500
DEFAULT_GRACE_SECONDS = 24 * 3600
MAX_GRACE_SECONDS = 7 * 24 * 3600
# Up to +20% on each scheduled wait, so receivers that failed together are not retried in
# one burst; never less than the schedule says.
RETRY_JITTER = 0.2
# Retries due within this many seconds go on the queue with a countdown; later ones are left
# to the periodic sweep (Redis redelivers unacknowledged countdown tasks after an hour).
COUNTDOWN_LIMIT = 900
# The sweep re-enqueues a due delivery whose task has not run this long after it was queued
# (the broker lost it, or the worker was down).
REQUEUE_AFTER = timedelta(seconds=120)
SWEEP_BATCH = 500
GONE = 410
# Seconds a webhook task may run past the attempt's deadline (its database work), and the
# lease past the task's time limit.
TIME_LIMIT_MARGIN = 30
LEASE_MARGIN = 30
# Set while a drain task is queued and has not started: commits meanwhile queue no other.
DRAIN_FLAG = "webhooks:drain-queued"
DRAIN_FLAG_SECONDS = 5
# A drain stops claiming after this many seconds (well within its task's time limit, which
# is this plus the attempt's deadline plus a margin away) and queues a successor.
DRAIN_SECONDS = 10
# Results are recorded in one transaction per this many, or per this many seconds: a slow
# receiver's delivery does not keep the others' results from being recorded.
RECORD_BATCH = 200
RECORD_INTERVAL = 0.2


# --- endpoints and secrets ------------------------------------------------------------------------


def _secret_fields(secret: str) -> dict[str, Any]:
    return {"secret_encrypted": keys.encrypt(secret)}


def _events(events: Iterable[str] | None) -> list[str]:
    if events is None:
        return list(SUBSCRIBABLE_EVENTS)
    chosen = set(events)
    unknown = chosen - set(SUBSCRIBABLE_EVENTS)
    if unknown or not chosen:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            "Unknown or missing events",
            {"events": [f"Choose one or more of: {', '.join(SUBSCRIBABLE_EVENTS)}"]},
        )
    # Stored in the catalogue's order, whatever order they came in.
    return [e for e in SUBSCRIBABLE_EVENTS if e in chosen]


def endpoint_create(
    *,
    account: Account,
    url: str,
    events: Iterable[str] | None = None,
    active: bool = True,
    description: str = "",
    test: bool = False,
) -> Endpoint:
    """``test``: the endpoint receives test traffic only; otherwise live traffic only."""
    return Endpoint.objects.create(
        account=account,
        url=security.validate_webhook_url(url, field="url"),
        events=_events(events),
        active=active,
        is_test=test,
        description=description,
        **_secret_fields(signing.generate_secret()),
    )


def endpoint_update(
    *,
    endpoint: Endpoint,
    url: str | None = None,
    events: Iterable[str] | None = None,
    active: bool | None = None,
    description: str | None = None,
) -> Endpoint:
    """Change what is given; reactivating an endpoint clears why it was disabled."""
    if url is not None:
        endpoint.url = security.validate_webhook_url(url, field="url")
    if events is not None:
        endpoint.events = _events(events)
    if description is not None:
        endpoint.description = description
    if active is not None:
        endpoint.active = active
        if active:
            endpoint.disabled_reason = ""
            endpoint.disabled_at = None
    endpoint.updated_at = timezone.now()
    endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    endpoint.delete()


def _rotate(holder: SigningSecretFields, grace_seconds: int) -> None:
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            "The grace period is out of range",
            {"grace_period_seconds": [f"Between 0 and {MAX_GRACE_SECONDS}"]},
        )
    now = timezone.now()
    if grace_seconds:
        holder.previous_secret_encrypted = holder.secret_encrypted
        holder.previous_secret_expires_at = now + timedelta(seconds=grace_seconds)
    else:
        holder.previous_secret_encrypted = ""
        holder.previous_secret_expires_at = None
    holder.secret_encrypted = keys.encrypt(signing.generate_secret())
    holder.secret_rotated_at = now


def endpoint_rotate_secret(
    *, endpoint: Endpoint, grace_seconds: int = DEFAULT_GRACE_SECONDS
) -> Endpoint:
    """A new signing secret; the old one keeps signing alongside it for ``grace_seconds``."""
    _rotate(endpoint, grace_seconds)
    endpoint.updated_at = timezone.now()
    endpoint.save()
    return endpoint


def endpoint_disable(*, endpoint_id: str, reason: str) -> None:
    Endpoint.objects.filter(pk=endpoint_id, active=True).update(
        active=False, disabled_reason=reason[:255], disabled_at=timezone.now()
    )


AccountSecret = AccountSigningSecret | AccountTestSigningSecret


def _account_secret_model(test: bool) -> type[AccountSecret]:
    return AccountTestSigningSecret if test else AccountSigningSecret


def account_signing_secret_ensure(*, account_id: int, test: bool = False) -> AccountSecret:
    """The account's secret for message-level webhook_url deliveries of live (or, with
    ``test``, test) messages, made on first use."""
    model = _account_secret_model(test)
    existing = model.objects.filter(account_id=account_id).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return model.objects.create(
                account_id=account_id, **_secret_fields(signing.generate_secret())
            )
    except IntegrityError:
        # Another process made it first.
        return model.objects.get(account_id=account_id)


def account_signing_secret_rotate(
    *, account_id: int, grace_seconds: int = DEFAULT_GRACE_SECONDS, test: bool = False
) -> AccountSecret:
    holder = account_signing_secret_ensure(account_id=account_id, test=test)
    _rotate(holder, grace_seconds)
    holder.save()
    return holder


# --- events ---------------------------------------------------------------------------------------


def _body(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def _enqueue(delivery_ids: Sequence[str], countdown: float | None = None) -> None:
    """Queue freshly due deliveries: a retry as its own task with a countdown, a single one
    as a drain signal (coalesced: a stream of one-event commits wakes one drain), a batch as
    one task per FAN_OUT_SIZE."""
    if countdown is not None:
        _publish(delivery_ids, countdown)
        return
    if len(delivery_ids) == 1:
        _signal_drain()
        return
    _fan_out(delivery_ids)


def _fan_out(delivery_ids: Sequence[str]) -> None:
    from webhooks.tasks import deliver_each

    # Publishing a task takes about half a millisecond, as long as ingesting a receipt: a
    # batch goes out as one task per FAN_OUT_SIZE deliveries, sent together by a worker.
    for start in range(0, len(delivery_ids), FAN_OUT_SIZE):
        chunk = list(delivery_ids[start : start + FAN_OUT_SIZE])
        try:
            deliver_each.delay(chunk)
        except Exception:  # noqa: BLE001 - the sweep picks up what could not be queued
            logger.warning("could not enqueue %d webhook deliveries", len(chunk), exc_info=True)


def _publish(delivery_ids: Sequence[str], countdown: float | None = None) -> None:
    from webhooks.tasks import deliver

    for delivery_id in delivery_ids:
        try:
            if countdown is None:
                deliver.delay(delivery_id)
            else:
                deliver.apply_async((delivery_id,), countdown=countdown)
        except Exception:  # noqa: BLE001 - the sweep picks up what could not be queued
            logger.warning("could not enqueue webhook delivery %s", delivery_id, exc_info=True)


def _signal_drain() -> None:
    """Wake a worker to drain what is due: one broker message however many commits ask,
    until a drain starts (it clears the flag before it claims, so nothing committed before
    then is missed) or the flag expires (a lost message delays deliveries by that long at
    most once the next one is written, and the sweep covers the rest)."""
    from webhooks.tasks import deliver_drain

    try:
        if not cache.add(DRAIN_FLAG, 1, timeout=DRAIN_FLAG_SECONDS):
            return
        deliver_drain.delay()
    except Exception:  # noqa: BLE001 - the sweep picks up what could not be queued
        logger.warning("could not signal a webhook drain", exc_info=True)
        with contextlib.suppress(Exception):
            cache.delete(DRAIN_FLAG)


def _enqueue_after_commit(delivery_ids: Sequence[str], countdown: float | None = None) -> None:
    if delivery_ids:
        transaction.on_commit(partial(_enqueue, list(delivery_ids), countdown), robust=True)


def delivery_enqueue_each(*, delivery_ids: Sequence[str]) -> int:
    """Send those of ``delivery_ids`` that are due and free, concurrently
    (``_deliver_concurrently``); the number of attempts made."""
    from webhooks.tasks import deliver_drain

    ids = list(delivery_ids)

    def claim(room: int) -> tuple[list[str], str]:
        nonlocal ids
        batch, ids = ids[:room], ids[room:]
        return _claim(batch, len(batch))

    sent, left_over = _deliver_concurrently(claim, lambda: bool(ids))
    if left_over:
        _queue_drain(deliver_drain)
    return sent


def event_record_status_changes(*, changes: Sequence[StatusChange]) -> list[Event]:
    """Write the events (and their deliveries) for a batch of status changes: for each
    message and status, one event per 500 recipients and one delivery per destination.

    A fixed number of queries for the whole batch, however many messages it spans. Runs
    inside the caller's transaction, so the outbox commits or rolls back with the status
    changes; the delivery tasks are queued after the commit.
    """
    wanted = [
        (change, STATUS_EVENTS[str(change.status)])
        for change in changes
        if str(change.status) in STATUS_EVENTS and change.recipient_ids
    ]
    if not wanted:
        return []
    messages = selectors.event_messages(message_ids={c.message_id for c, _ in wanted})
    endpoints = selectors.endpoints_active(
        account_ids=sorted({c.account_id for c, _ in wanted if c.message_id in messages})
    )
    routed: list[tuple[StatusChange, EventType, selectors.EventMessage, list[Endpoint]]] = []
    for change, event_type in wanted:
        message = messages.get(change.message_id)
        if message is None:
            continue
        # Test traffic goes to test endpoints only, live traffic to live ones only.
        subscribed = [
            e
            for e in endpoints.get(change.account_id, ())
            if e.is_test == message.is_test and e.subscribes_to(event_type)
        ]
        if message.webhook_url or subscribed:
            routed.append((change, event_type, message, subscribed))
    if not routed:
        return []
    recipients = selectors.event_recipients(
        recipient_ids={rid for change, *_ in routed for rid in change.recipient_ids}
    )
    now = timezone.now()
    created_at = iso(now)
    events: list[Event] = []
    deliveries: list[Delivery] = []
    for change, event_type, message, subscribed in routed:
        status = str(change.status)
        api_key_id = message.api_key_id if message.source == Message.Source.API else None
        metadata = {
            "sender_id": message.sender_id,
            "cost": money(message.cost),
            "currency": message.currency,
        }
        destinations: list[tuple[Endpoint | None, str]] = [(e, e.url) for e in subscribed]
        if message.webhook_url:
            destinations.insert(0, (None, message.webhook_url))
        ids = sorted(set(change.recipient_ids))
        for start in range(0, len(ids), RECIPIENTS_PER_EVENT):
            rows = [
                recipients[rid]
                for rid in ids[start : start + RECIPIENTS_PER_EVENT]
                if rid in recipients
            ]
            if not rows:
                continue
            event = Event(
                account_id=change.account_id,
                type=event_type,
                message_id=change.message_id,
                api_key_id=api_key_id,
                is_test=message.is_test,
                created_at=now,
            )
            event.body = _body(
                {
                    "event_id": event.id,
                    "event": event_type.value,
                    "created_at": created_at,
                    "message_id": change.message_id,
                    "status": status,
                    "recipients": [
                        {
                            "phone": row.phone,
                            "status": status,
                            "delivery_time": (
                                iso(row.delivered_at or now) if status == "delivered" else None
                            ),
                        }
                        for row in rows
                    ],
                    "metadata": metadata,
                }
            )
            events.append(event)
            deliveries.extend(
                Delivery(
                    event=event,
                    account_id=change.account_id,
                    endpoint=endpoint,
                    url=url,
                    next_attempt_at=now,
                    enqueued_at=now,
                    created_at=now,
                )
                for endpoint, url in destinations
            )
    with atomic_unless_nested():
        Event.objects.bulk_create(events, batch_size=INSERT_BATCH)
        Delivery.objects.bulk_create(deliveries, batch_size=INSERT_BATCH)
    _enqueue_after_commit([d.pk for d in deliveries])
    return events


def event_record_low_balance(*, alert: LowBalance) -> Event | None:
    """Write the ``account.low_balance`` event and a delivery to every active live endpoint
    of the account that subscribes to it, inside the caller's transaction (the one that
    moved the balance); None when no endpoint wants it. Delivered, signed and retried like
    the message events. Only live traffic moves money, so the event is live: test
    endpoints never receive it."""
    return event_record_account(
        account_id=alert.account_id,
        event_type=EventType.LOW_BALANCE,
        payload={
            "balance": money(alert.balance),
            "threshold": money(alert.threshold),
            "currency": alert.currency,
        },
    )


class AccountEvent(NamedTuple):
    """An account event about no sent message (an inbound message, an opt-out)."""

    account_id: int
    event_type: EventType
    payload: dict[str, Any]
    is_test: bool = False


def event_record_accounts(*, events: Sequence[AccountEvent]) -> list[Event]:
    """Write account events and a delivery to each active endpoint of their mode that
    subscribes to them, inside the caller's transaction, with a fixed number of queries for
    the batch; events no endpoint wants are not written. Each body is the payload after
    ``event_id``, ``event`` and ``created_at``; delivered, signed and retried like the
    message events."""
    if not events:
        return []
    endpoints = selectors.endpoints_active(account_ids=sorted({e.account_id for e in events}))
    now = timezone.now()
    written: list[Event] = []
    deliveries: list[Delivery] = []
    for wanted in events:
        subscribed = [
            e
            for e in endpoints.get(wanted.account_id, ())
            if e.is_test == wanted.is_test and e.subscribes_to(wanted.event_type)
        ]
        if not subscribed:
            continue
        event = Event(
            account_id=wanted.account_id,
            type=wanted.event_type,
            is_test=wanted.is_test,
            created_at=now,
        )
        event.body = _body(
            {
                "event_id": event.id,
                "event": wanted.event_type.value,
                "created_at": iso(now),
                **wanted.payload,
            }
        )
        written.append(event)
        deliveries.extend(
            Delivery(
                event=event,
                account_id=wanted.account_id,
                endpoint=endpoint,
                url=endpoint.url,
                next_attempt_at=now,
                enqueued_at=now,
                created_at=now,
            )
            for endpoint in subscribed
        )
    if written:
        with atomic_unless_nested():
            Event.objects.bulk_create(written, batch_size=INSERT_BATCH)
            Delivery.objects.bulk_create(deliveries, batch_size=INSERT_BATCH)
        _enqueue_after_commit([d.pk for d in deliveries])
    return written


def event_record_account(
    *, account_id: int, event_type: EventType, payload: dict[str, Any], is_test: bool = False
) -> Event | None:
    """One account event (see ``event_record_accounts``); None when no endpoint wants it."""
    written = event_record_accounts(events=[AccountEvent(account_id, event_type, payload, is_test)])
    return written[0] if written else None


def event_send_test(*, endpoint: Endpoint, api_key: ApiKey | None) -> Delivery:
    """Send a ``message.test`` event to ``endpoint`` now and return the delivery with the
    attempt's result. It is tried once, never retried. ``api_key`` (who asked) goes into the
    Authorization header only if it is of the endpoint's mode: a live key is never sent to a
    test endpoint, which a test key may have made."""
    if api_key is not None and api_key.is_test != endpoint.is_test:
        api_key = None
    now = timezone.now()
    event = Event(
        account_id=endpoint.account_id,
        type=EventType.TEST,
        api_key=api_key,
        is_test=endpoint.is_test,
        created_at=now,
    )
    event.body = _body(
        {
            "event_id": event.id,
            "event": EventType.TEST.value,
            "created_at": iso(now),
            "message_id": "msg_test",
            "status": "delivered",
            "recipients": [
                {"phone": "+255700000000", "status": "delivered", "delivery_time": iso(now)}
            ],
            "metadata": {
                "sender_id": settings.MIFUMO_DEFAULT_SENDER_ID,
                "cost": 0.0,
                "currency": settings.MIFUMO_CURRENCY,
            },
        }
    )
    event.save()
    delivery = Delivery.objects.create(
        event=event,
        account_id=endpoint.account_id,
        endpoint=endpoint,
        url=endpoint.url,
        next_attempt_at=now,
        enqueued_at=now,
        created_at=now,
    )
    delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


# --- delivering -----------------------------------------------------------------------------------


def _timeout() -> float:
    return float(settings.MIFUMO_WEBHOOK_TIMEOUT)


def task_time_limit() -> int:
    """Celery's hard time limit for the webhook tasks, in seconds: a backstop, as an attempt
    ends by its deadline (MIFUMO_WEBHOOK_TIMEOUT over the whole exchange,
    ``webhooks.transport``)."""
    return math.ceil(_timeout()) + TIME_LIMIT_MARGIN


def lease() -> timedelta:
    """How long a claimed delivery is held. Longer than the task's time limit, which is
    longer than the attempt's deadline: no lease runs out while its attempt may still run,
    so no other worker sends the same delivery meanwhile and the result always counts."""
    return timedelta(seconds=task_time_limit() + LEASE_MARGIN)


def retry_delay(attempts_made: int) -> float | None:
    """Seconds to wait after the ``attempts_made``-th failed attempt, or None: give up."""
    schedule = settings.MIFUMO_WEBHOOK_RETRY_SCHEDULE
    if attempts_made > len(schedule):
        return None
    base = float(schedule[attempts_made - 1])
    return base + random.uniform(0, base * RETRY_JITTER)


def _claimable(now: datetime) -> Q:
    return Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now) & (
        Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    )


def _bearer(event: Event, account: Account) -> str | None:
    """The key that sent the message, while it still works. A revoked, rotated or expired
    key is never sent (its copy is gone or its time is up): the signature alone then
    authenticates the event."""
    api_key = event.api_key
    if not account.webhook_send_api_key or api_key is None:
        return None
    if api_key.status != "active" or not api_key.encrypted_key:
        return None
    try:
        return keys.decrypt(api_key.encrypted_key)
    except InvalidToken:
        logger.warning("cannot decrypt API key %s for webhook Authorization", event.api_key_id)
        return None


def _for_sending() -> QuerySet[Delivery]:
    """One query for everything a send needs, and only that (this is the hot path)."""
    return Delivery.objects.select_related(
        "event__api_key", "endpoint", "account__webhook_signing_secret"
    ).only(
        "id",
        "account_id",
        "endpoint_id",
        "url",
        "attempts",
        "event__id",
        "event__type",
        "event__body",
        "event__is_test",
        "event__api_key__encrypted_key",
        "event__api_key__revoked_at",
        "event__api_key__expires_at",
        "endpoint__url",
        "endpoint__active",
        "endpoint__disabled_reason",
        "endpoint__secret_encrypted",
        "endpoint__previous_secret_encrypted",
        "endpoint__previous_secret_expires_at",
        "account__webhook_send_api_key",
        "account__webhook_signing_secret__secret_encrypted",
        "account__webhook_signing_secret__previous_secret_encrypted",
        "account__webhook_signing_secret__previous_secret_expires_at",
    )


def _signing_secrets(delivery: Delivery) -> list[str]:
    if delivery.endpoint is not None:
        return delivery.endpoint.signing_secrets()
    holder: AccountSecret
    if delivery.event.is_test:
        holder = account_signing_secret_ensure(account_id=delivery.account_id, test=True)
    else:
        try:
            holder = delivery.account.webhook_signing_secret
        except AccountSigningSecret.DoesNotExist:
            holder = account_signing_secret_ensure(account_id=delivery.account_id)
    return holder.signing_secrets()


def _headers(
    delivery: Delivery, body: bytes, memo: dict[tuple[Any, ...], Any] | None = None
) -> dict[str, str]:
    """``memo``: secrets and keys already decrypted for other deliveries of a batch."""
    event = delivery.event
    memo = {} if memo is None else memo
    holder = ("endpoint", delivery.endpoint_id) if delivery.endpoint_id else None
    secrets_key = holder or ("account", delivery.account_id, event.is_test)
    secrets = memo.get(secrets_key)
    if secrets is None:
        secrets = memo[secrets_key] = _signing_secrets(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": transport.USER_AGENT,
        "X-Mifumo-Event": event.type,
        "X-Mifumo-Event-Id": event.id,
        "X-Mifumo-Delivery-Id": delivery.id,
        "X-Mifumo-Signature": signing.signature_header(secrets, int(time.time()), body),
    }
    bearer_key = ("bearer", event.api_key_id, delivery.account_id)
    if bearer_key in memo:
        bearer = memo[bearer_key]
    else:
        bearer = memo[bearer_key] = _bearer(event, delivery.account)
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    return headers


def _send(url: str, body: bytes, headers: dict[str, str]) -> transport.Outcome:
    try:
        # The saved URL is checked again: a row may predate a tightened policy.
        security.split_url(url)
    except security.UnsafeDestination as exc:
        return transport.Outcome(None, 0.0, f"Refused: {exc}", "")
    return transport.post(url, body=body, headers=headers, timeout=_timeout())


def _fail_unsent(delivery_id: str, token: str, endpoint: Endpoint) -> None:
    """A claimed delivery to a disabled endpoint fails without being sent."""
    reason = endpoint.disabled_reason or "deactivated"
    Delivery.objects.filter(pk=delivery_id, lock_token=token).update(
        status=Delivery.Status.FAILED,
        next_attempt_at=None,
        locked_until=None,
        lock_token="",
        completed_at=timezone.now(),
        last_error=f"Not sent: the endpoint is disabled ({reason})"[:500],
    )


def delivery_attempt(*, delivery_id: str) -> DeliveryAttempt | None:
    """Claim the delivery if it is due and nobody holds it, send it once, record the attempt
    and schedule the next one. None when there was nothing to do."""
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = Delivery.objects.filter(_claimable(now), pk=delivery_id).update(
        locked_until=now + lease(), lock_token=token
    )
    if not claimed:
        return None
    delivery = _for_sending().get(pk=delivery_id)
    endpoint = delivery.endpoint
    is_test = delivery.event.type == EventType.TEST
    if endpoint is not None and not endpoint.active and not is_test:
        _fail_unsent(delivery_id, token, endpoint)
        return None
    url = endpoint.url if endpoint is not None else delivery.url
    body = delivery.event.body.encode()
    started_at = timezone.now()
    outcome = _send(url, body, _headers(delivery, body))
    return _record(delivery, token, url, started_at, outcome, retry=not is_test)


def _attempt_fields(
    delivery: Delivery,
    url: str,
    started_at: datetime,
    outcome: transport.Outcome,
    *,
    retry: bool,
) -> tuple[dict[str, Any], DeliveryAttempt, float | None, bool]:
    """What an attempt changes on its delivery, its attempt row, the wait before the next
    attempt (None: no other) and whether the receiver answered 410 Gone."""
    number = delivery.attempts + 1
    now = timezone.now()
    fields: dict[str, Any] = {
        "attempts": number,
        "url": url,
        "last_attempt_at": started_at,
        "last_status_code": outcome.status_code,
        "last_latency_ms": outcome.latency_ms,
        "last_error": outcome.error,
        "last_response": outcome.response_head,
        "locked_until": None,
        "lock_token": "",
    }
    gone = outcome.status_code == GONE
    delay = None if outcome.succeeded or gone or not retry else retry_delay(number)
    if outcome.succeeded:
        fields.update(status=Delivery.Status.SUCCEEDED, next_attempt_at=None, completed_at=now)
    elif delay is None:
        fields.update(status=Delivery.Status.FAILED, next_attempt_at=None, completed_at=now)
    else:
        next_at = now + timedelta(seconds=delay)
        fields.update(
            next_attempt_at=next_at,
            enqueued_at=next_at if delay <= COUNTDOWN_LIMIT else None,
        )
    attempt = DeliveryAttempt(
        delivery_id=delivery.pk,
        number=number,
        started_at=started_at,
        url=url,
        succeeded=outcome.succeeded,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
        response_head=outcome.response_head,
    )
    return fields, attempt, delay, gone


def _record(
    delivery: Delivery,
    token: str,
    url: str,
    started_at: datetime,
    outcome: transport.Outcome,
    *,
    retry: bool,
) -> DeliveryAttempt:
    fields, attempt, delay, gone = _attempt_fields(delivery, url, started_at, outcome, retry=retry)
    with transaction.atomic():
        # Only while still holding the lease: if it expired and another worker took the
        # delivery over, that worker's result is the one that counts. The UPDATE also locks
        # the row, so the delivery cannot be deleted under the attempt row.
        updated = Delivery.objects.filter(pk=delivery.pk, lock_token=token).update(**fields)
        if not updated and not Delivery.objects.filter(pk=delivery.pk).exists():
            logger.info("webhook delivery %s was deleted while it was being sent", delivery.pk)
            return attempt
        attempt.save()
        if gone and delivery.endpoint_id is not None:
            endpoint_disable(
                endpoint_id=delivery.endpoint_id,
                reason=f"The receiver answered 410 Gone on {iso(started_at)}",
            )
        if updated and delay is not None and delay <= COUNTDOWN_LIMIT:
            _enqueue_after_commit([delivery.pk], countdown=delay)
    return attempt


# --- delivering many at once ----------------------------------------------------------------------


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
    for delivery in _for_sending().filter(pk__in=ids):
        endpoint = delivery.endpoint
        is_test = delivery.event.type == EventType.TEST
        if endpoint is not None and not endpoint.active and not is_test:
            _fail_unsent(delivery.pk, token, endpoint)
            continue
        url = endpoint.url if endpoint is not None else delivery.url
        body = delivery.event.body.encode()
        job = _Job(delivery, token, url, body, {}, not is_test, send_by)
        try:
            job.headers = _headers(delivery, body, memo)
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
    return started_at, _send(job.url, job.body, job.headers)


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
    columns: list[list[Any]] = [[] for _ in range(14)]
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
    columns = [[getattr(a, name) for a in attempts] for name in _ATTEMPT_COLUMNS]
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
        fields, attempt, delay, gone = _attempt_fields(
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
                _enqueue_after_commit([delivery.pk], countdown=delay)


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
    from webhooks.tasks import deliver_drain

    with contextlib.suppress(Exception):
        cache.delete(DRAIN_FLAG)
    empty = False

    def claim(room: int) -> tuple[list[str], str]:
        nonlocal empty
        ids, token = _claim(None, room)
        empty = len(ids) < room
        return ids, token

    sent, left_over = _deliver_concurrently(claim, lambda: not empty)
    if left_over:
        _queue_drain(deliver_drain)
    return sent


def _queue_drain(task: Any) -> None:
    try:
        task.delay()
    except Exception:  # noqa: BLE001 - the sweep picks up what could not be queued
        logger.warning("could not queue a webhook drain", exc_info=True)


def delivery_redeliver(*, delivery: Delivery) -> Delivery:
    """Send a finished delivery's event again, as a new delivery with a fresh retry budget."""
    if delivery.status == Delivery.Status.PENDING:
        raise DomainError(
            ErrorCode.CONFLICT,
            "This delivery is still pending; it will be retried on its schedule",
            {"delivery_id": delivery.pk, "status": delivery.status},
        )
    endpoint = delivery.endpoint
    if endpoint is not None and not endpoint.active:
        raise DomainError(
            ErrorCode.CONFLICT,
            "The endpoint is disabled; activate it before redelivering",
            {"webhook_id": endpoint.pk, "disabled_reason": endpoint.disabled_reason},
        )
    now = timezone.now()
    with atomic_unless_nested():
        again = Delivery.objects.create(
            event_id=delivery.event_id,
            account_id=delivery.account_id,
            endpoint=endpoint,
            url=endpoint.url if endpoint is not None else delivery.url,
            redelivery=True,
            next_attempt_at=now,
            enqueued_at=now,
            created_at=now,
        )
        _enqueue_after_commit([again.pk])
    return again


def delivery_enqueue_due(*, limit: int = SWEEP_BATCH) -> int:
    """Queue a task for every due delivery that nobody holds and whose queued task, if any,
    should have run by now. The safety net for a lost broker message or a stopped worker."""
    now = timezone.now()
    due = (
        Delivery.objects.filter(_claimable(now))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - REQUEUE_AFTER))
        .order_by("next_attempt_at")
        .select_for_update(skip_locked=True)
    )
    with transaction.atomic():
        ids = list(due.values_list("pk", flat=True)[:limit])
        if ids:
            Delivery.objects.filter(pk__in=ids).update(enqueued_at=now)
            # Exactly these: what is queued already is left to its task.
            transaction.on_commit(partial(_fan_out, ids), robust=True)
    return len(ids)
