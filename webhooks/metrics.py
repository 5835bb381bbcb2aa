"""Webhook delivery attempts by outcome, counted after commit; ``WebhooksConfig.ready()``
connects the receivers and ``mifumo.metrics`` exposes the counter."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from prometheus_client import Counter

WEBHOOK_ATTEMPTS = Counter(
    "mifumo_webhook_attempts",
    "Webhook delivery attempts, by outcome (succeeded, failed)",
    ["outcome"],
)


def on_attempt_saved(*, instance: Any, created: bool, **_: Any) -> None:
    if created:
        outcome = "succeeded" if instance.succeeded else "failed"
        transaction.on_commit(lambda: WEBHOOK_ATTEMPTS.labels(outcome).inc())


def on_attempts_recorded(*, succeeded: int, failed: int, **_: Any) -> None:
    def count() -> None:
        if succeeded:
            WEBHOOK_ATTEMPTS.labels("succeeded").inc(succeeded)
        if failed:
            WEBHOOK_ATTEMPTS.labels("failed").inc(failed)

    transaction.on_commit(count)
