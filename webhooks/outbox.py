"""The events outbox: events and their deliveries written inside the transaction of the change
they report, and the delivery tasks queued once that transaction commits.

Message status events come from ``sms.signals.recipients_status_changed_batch`` (sent by
``sms.signals.send_status_changes`` from ``sms.dispatch`` and ``sms.receipts``), low-balance
events from ``integration.signals.balance_fell_below_threshold`` (sent by
``integration.services``); ``webhooks.receivers`` turns both into calls here. Inbound messages
and opt-outs are recorded by ``inbox.services`` and ``contacts.services`` directly
(``event_record_accounts``). Every body is built by ``event_payload``.

The tasks that send deliveries live in ``webhooks.tasks``, which imports the delivering
modules; they are queued here by name, so nothing here imports them.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

from celery import Task, current_app
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from integration.signals import LowBalance
from mifumo.api.fields import iso, money
from mifumo.db import atomic_unless_nested
from sms.models import Message
from sms.signals import StatusChange
from webhooks import selectors
from webhooks.models import Delivery, Endpoint, Event, EventType

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
# Set while a drain task is queued and has not started: commits meanwhile queue no other.
DRAIN_FLAG = "webhooks:drain-queued"
DRAIN_FLAG_SECONDS = 5

# The names ``webhooks.tasks`` registers its tasks under, and the outbox queues them by.
DELIVER_TASK = "webhooks.tasks.deliver"
DELIVER_EACH_TASK = "webhooks.tasks.deliver_each"
DELIVER_DRAIN_TASK = "webhooks.tasks.deliver_drain"
DELIVER_DUE_TASK = "webhooks.tasks.deliver_due"


# --- bodies ---------------------------------------------------------------------------------------


def event_payload(event: Event, fields: Mapping[str, Any]) -> str:
    """The JSON body of ``event``: ``event_id``, ``event`` and ``created_at``, then ``fields``."""
    payload = {
        "event_id": event.id,
        "event": str(event.type),
        "created_at": iso(event.created_at),
        **fields,
    }
    return json.dumps(payload, separators=(",", ":"))


def message_fields(
    *,
    message_id: str,
    status: str,
    recipients: Iterable[tuple[str, str | None]],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """A message event's fields, the Integration Guide's shape: the recipients (phone,
    delivery time) that moved together to ``status``."""
    return {
        "message_id": message_id,
        "status": status,
        "recipients": [
            {"phone": phone, "status": status, "delivery_time": delivered_at}
            for phone, delivered_at in recipients
        ],
        "metadata": metadata,
    }


# --- queueing -------------------------------------------------------------------------------------


def _task(name: str) -> Task[Any, Any]:
    """The task registered under ``name`` (``WebhooksConfig.ready`` imports ``webhooks.tasks``
    in every process): queued through it, it runs at once where tasks are eager."""
    task: Task[Any, Any] = current_app.tasks[name]
    return task


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
    fan_out(delivery_ids)


def fan_out(delivery_ids: Sequence[str]) -> None:
    # Publishing a task takes about half a millisecond, as long as ingesting a receipt: a
    # batch goes out as one task per FAN_OUT_SIZE deliveries, sent together by a worker.
    for start in range(0, len(delivery_ids), FAN_OUT_SIZE):
        chunk = list(delivery_ids[start : start + FAN_OUT_SIZE])
        try:
            _task(DELIVER_EACH_TASK).delay(chunk)
        except Exception:  # noqa: BLE001 - the sweep picks up what could not be queued
            logger.warning("could not enqueue %d webhook deliveries", len(chunk), exc_info=True)


def _publish(delivery_ids: Sequence[str], countdown: float | None = None) -> None:
    for delivery_id in delivery_ids:
        try:
            if countdown is None:
                _task(DELIVER_TASK).delay(delivery_id)
            else:
                _task(DELIVER_TASK).apply_async((delivery_id,), countdown=countdown)
        except Exception:  # noqa: BLE001 - the sweep picks up what could not be queued
            logger.warning("could not enqueue webhook delivery %s", delivery_id, exc_info=True)


def _signal_drain() -> None:
    """Wake a worker to drain what is due: one broker message however many commits ask,
    until a drain starts (it clears the flag before it claims, so nothing committed before
    then is missed) or the flag expires (a lost message delays deliveries by that long at
    most once the next one is written, and the sweep covers the rest)."""
    try:
        if not cache.add(DRAIN_FLAG, 1, timeout=DRAIN_FLAG_SECONDS):
            return
        _task(DELIVER_DRAIN_TASK).delay()
    except Exception:  # noqa: BLE001 - the sweep picks up what could not be queued
        logger.warning("could not signal a webhook drain", exc_info=True)
        with contextlib.suppress(Exception):
            cache.delete(DRAIN_FLAG)


def clear_drain_signal() -> None:
    """Called by a drain before it claims: a commit from now on wakes another."""
    with contextlib.suppress(Exception):
        cache.delete(DRAIN_FLAG)


def queue_drain() -> None:
    """Queue another drain straight away (a drain that stopped with deliveries left)."""
    try:
        _task(DELIVER_DRAIN_TASK).delay()
    except Exception:  # noqa: BLE001 - the sweep picks up what could not be queued
        logger.warning("could not queue a webhook drain", exc_info=True)


def enqueue_after_commit(delivery_ids: Sequence[str], countdown: float | None = None) -> None:
    if delivery_ids:
        transaction.on_commit(partial(_enqueue, list(delivery_ids), countdown), robust=True)


# --- recording ------------------------------------------------------------------------------------


def new_delivery(event: Event, endpoint: Endpoint | None, url: str) -> Delivery:
    """An unsaved delivery of ``event`` to ``url``, due when the event was made."""
    return Delivery(
        event=event,
        account_id=event.account_id,
        endpoint=endpoint,
        url=url,
        next_attempt_at=event.created_at,
        enqueued_at=event.created_at,
        created_at=event.created_at,
    )


def _write(events: Sequence[Event], deliveries: Sequence[Delivery]) -> None:
    with atomic_unless_nested():
        Event.objects.bulk_create(events, batch_size=INSERT_BATCH)
        Delivery.objects.bulk_create(deliveries, batch_size=INSERT_BATCH)
    enqueue_after_commit([d.pk for d in deliveries])


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
        account_ids=sorted(
            {
                c.account_id
                for c, _ in wanted
                if c.message_id in messages and messages[c.message_id].has_endpoints
            }
        )
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
            event.body = event_payload(
                event,
                message_fields(
                    message_id=change.message_id,
                    status=status,
                    recipients=(
                        (row.phone, iso(row.delivered_at or now) if status == "delivered" else None)
                        for row in rows
                    ),
                    metadata=metadata,
                ),
            )
            events.append(event)
            deliveries.extend(new_delivery(event, endpoint, url) for endpoint, url in destinations)
    _write(events, deliveries)
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
        event.body = event_payload(event, wanted.payload)
        written.append(event)
        deliveries.extend(new_delivery(event, endpoint, endpoint.url) for endpoint in subscribed)
    if written:
        _write(written, deliveries)
    return written


def event_record_account(
    *, account_id: int, event_type: EventType, payload: dict[str, Any], is_test: bool = False
) -> Event | None:
    """One account event (see ``event_record_accounts``); None when no endpoint wants it."""
    written = event_record_accounts(events=[AccountEvent(account_id, event_type, payload, is_test)])
    return written[0] if written else None
