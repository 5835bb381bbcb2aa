"""Celery tasks (queue ``webhooks``): thin wrappers over ``webhooks.delivery`` and
``webhooks.drain``.

Queued by name (``webhooks.outbox``), so no module of this app imports this one but
``WebhooksConfig.ready``, which registers them in every process. Each has a hard time limit
as a backstop: an attempt ends by its own deadline, and the delivery's lease outlasts the
limit (``webhooks.delivery.lease``).
"""

from __future__ import annotations

from celery import shared_task

from webhooks.delivery import delivery_attempt, delivery_enqueue_due, task_time_limit
from webhooks.drain import DRAIN_SECONDS, delivery_drain, delivery_enqueue_each
from webhooks.outbox import DELIVER_DRAIN_TASK, DELIVER_DUE_TASK, DELIVER_EACH_TASK, DELIVER_TASK

TIME_LIMIT = task_time_limit()


@shared_task(name=DELIVER_TASK, time_limit=TIME_LIMIT)
def deliver(delivery_id: str) -> None:
    delivery_attempt(delivery_id=delivery_id)


@shared_task(name=DELIVER_EACH_TASK, time_limit=TIME_LIMIT + DRAIN_SECONDS)
def deliver_each(delivery_ids: list[str]) -> None:
    delivery_enqueue_each(delivery_ids=delivery_ids)


@shared_task(name=DELIVER_DRAIN_TASK, time_limit=TIME_LIMIT + DRAIN_SECONDS)
def deliver_drain() -> int:
    return delivery_drain()


@shared_task(name=DELIVER_DUE_TASK, time_limit=TIME_LIMIT)
def deliver_due() -> int:
    return delivery_enqueue_due()
