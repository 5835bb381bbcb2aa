from __future__ import annotations

from celery import shared_task

from inbox.sinks import inbound_flush_stale_parts


@shared_task(name="inbox.tasks.flush_stale_parts")
def flush_stale_parts() -> int:
    """Multipart inbound messages whose parts stopped coming: stored as they are."""
    return inbound_flush_stale_parts()
