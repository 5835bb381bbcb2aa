"""Celery tasks (queue ``webhooks``): thin wrappers over webhooks.services.

Each has a hard time limit as a backstop: an attempt ends by its own deadline, and the
delivery's lease outlasts the limit (``webhooks.services.lease``).
"""

from __future__ import annotations

from celery import shared_task

from webhooks.services import (
    DRAIN_SECONDS,
    delivery_attempt,
    delivery_drain,
    delivery_enqueue_due,
    delivery_enqueue_each,
    task_time_limit,
)

TIME_LIMIT = task_time_limit()


@shared_task(name="webhooks.tasks.deliver", time_limit=TIME_LIMIT)
def deliver(delivery_id: str) -> None:
    delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.tasks.deliver_each", time_limit=TIME_LIMIT + DRAIN_SECONDS)
def deliver_each(delivery_ids: list[str]) -> None:
    delivery_enqueue_each(delivery_ids=delivery_ids)


@shared_task(name="webhooks.tasks.deliver_drain", time_limit=TIME_LIMIT + DRAIN_SECONDS)
def deliver_drain() -> int:
    return delivery_drain()


@shared_task(name="webhooks.tasks.deliver_due", time_limit=TIME_LIMIT)
def deliver_due() -> int:
    return delivery_enqueue_due()
