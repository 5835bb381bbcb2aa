"""Celery tasks (queue ``webhooks``): thin wrappers over webhooks.services."""

from __future__ import annotations

from celery import shared_task

from webhooks.services import delivery_attempt, delivery_enqueue_due, delivery_enqueue_each


@shared_task(name="webhooks.tasks.deliver")
def deliver(delivery_id: str) -> None:
    delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.tasks.deliver_each")
def deliver_each(delivery_ids: list[str]) -> None:
    delivery_enqueue_each(delivery_ids=delivery_ids)


@shared_task(name="webhooks.tasks.deliver_due")
def deliver_due() -> int:
    return delivery_enqueue_due()
