"""Delivering one webhook: claim it, sign it, send it, record the attempt, schedule a retry.

The receiver is never called inside a transaction, and a delivery is claimed (a lease taken
with a conditional UPDATE) before it is sent, so two workers never send it at the same time;
the lease outlasts the task's time limit, which outlasts the attempt's deadline (``lease``).
Retries due soon are queued with a countdown, later ones left to the periodic sweep
(``delivery_enqueue_due``). Sending many at once is ``webhooks.drain``; the tasks that call
both are ``webhooks.tasks``.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from integration import keys
from integration.audit import Action, AuditContext
from integration.models import Account, ApiKey
from mifumo.api.fields import iso
from mifumo.db import atomic_unless_nested
from mifumo.errors import DomainError, ErrorCode
from webhooks import security, signing, transport
from webhooks.endpoints import AccountSecret, account_signing_secret_ensure, endpoint_disable
from webhooks.models import (
    AccountSigningSecret,
    Delivery,
    DeliveryAttempt,
    Endpoint,
    Event,
    EventType,
)
from webhooks.outbox import (
    enqueue_after_commit,
    event_payload,
    fan_out,
    message_fields,
    new_delivery,
)

logger = logging.getLogger(__name__)

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


def for_sending() -> QuerySet[Delivery]:
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


def signed_headers(
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


def send_request(url: str, body: bytes, headers: dict[str, str]) -> transport.Outcome:
    try:
        # The saved URL is checked again: a row may predate a tightened policy.
        security.split_url(url)
    except security.UnsafeDestination as exc:
        return transport.Outcome(None, 0.0, f"Refused: {exc}", "")
    return transport.post(url, body=body, headers=headers, timeout=_timeout())


def fail_unsent(delivery_id: str, token: str, endpoint: Endpoint) -> None:
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
    delivery = for_sending().get(pk=delivery_id)
    endpoint = delivery.endpoint
    is_test = delivery.event.type == EventType.TEST
    if endpoint is not None and not endpoint.active and not is_test:
        fail_unsent(delivery_id, token, endpoint)
        return None
    url = endpoint.url if endpoint is not None else delivery.url
    body = delivery.event.body.encode()
    started_at = timezone.now()
    outcome = send_request(url, body, signed_headers(delivery, body))
    return _record(delivery, token, url, started_at, outcome, retry=not is_test)


def attempt_fields(
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
    fields, attempt, delay, gone = attempt_fields(delivery, url, started_at, outcome, retry=retry)
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
            enqueue_after_commit([delivery.pk], countdown=delay)
    return attempt


def delivery_redeliver(*, delivery: Delivery, audit: AuditContext | None = None) -> Delivery:
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
        if audit is not None:
            audit.record(
                account=delivery.account_id,
                action=Action.WEBHOOK_REDELIVERED,
                target=delivery.pk,
                details={"new_delivery": again.pk, "endpoint": delivery.endpoint_id},
            )
        enqueue_after_commit([again.pk])
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
            transaction.on_commit(partial(fan_out, ids), robust=True)
    return len(ids)


def event_send_test(
    *, endpoint: Endpoint, api_key: ApiKey | None, audit: AuditContext | None = None
) -> Delivery:
    """Send a ``message.test`` event to ``endpoint`` now and return the delivery with the
    attempt's result. It is tried once, never retried. ``api_key`` (who asked) goes into the
    Authorization header only if it is of the endpoint's mode: a live key is never sent to a
    test endpoint, which a test key may have made. The activity-log entry is written after
    the attempt, with its answer: no transaction is held open over the request."""
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
    event.body = event_payload(
        event,
        message_fields(
            message_id="msg_test",
            status="delivered",
            recipients=[("+255700000000", iso(now))],
            metadata={
                "sender_id": settings.MIFUMO_DEFAULT_SENDER_ID,
                "cost": 0.0,
                "currency": settings.MIFUMO_CURRENCY,
            },
        ),
    )
    event.save()
    delivery = new_delivery(event, endpoint, endpoint.url)
    delivery.save()
    delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    if audit is not None:
        audit.record(
            account=endpoint.account_id,
            action=Action.WEBHOOK_TESTED,
            target=endpoint.pk,
            details={"delivery": delivery.pk, "status_code": delivery.last_status_code},
        )
    return delivery
