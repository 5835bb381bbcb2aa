"""Carriers in a process of their own (SMPP binds, see ``run_smpp``): their claimed
recipients get a ``Handoff`` row and stay ``submitting`` under the worker's claim lease. The
process takes handoffs (``handoff_take``), submits and records through the same code as the
workers. While a carrier's process is alive (a heartbeat in the cache) the sweep leaves its
waiting recipients alone; otherwise, once the lease is over, they are taken back and routed
again like any other expired claim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from sms.models import Handoff, Recipient

logger = logging.getLogger(__name__)
S = Recipient.Status

# How long a dedicated carrier process counts as alive after its last heartbeat.
HEARTBEAT_SECONDS = 30


def handoff(*, recipient_ids: Sequence[int], carrier: str) -> None:
    """Leave claimed recipients for ``carrier``'s own process; their claim lease restarts."""
    if not recipient_ids:
        return
    now = timezone.now()
    ids = list(recipient_ids)
    with transaction.atomic():
        Recipient.objects.filter(id__in=ids, status=S.SUBMITTING).update(
            carrier=carrier, claimed_at=now, updated_at=now
        )
        Handoff.objects.bulk_create(
            [Handoff(recipient_id=rid, carrier=carrier, created_at=now) for rid in ids],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["recipient"],
            update_fields=["carrier", "created_at"],
        )


def handoff_take(*, carrier: str, limit: int) -> tuple[list[tuple[int, str, str]], datetime]:
    """Take up to ``limit`` recipients left for ``carrier``, oldest first, as (recipient id,
    message id, phone), and the claim's new ``claimed_at`` (its token, ``sms.dispatch.lease``).
    Taking deletes the handoff, so no two processes take one recipient; a handoff whose
    recipient moved on meanwhile is dropped."""
    now = timezone.now()
    with transaction.atomic():
        rows = (
            Handoff.objects.filter(carrier=carrier)
            .order_by("recipient_id")
            .select_for_update(skip_locked=True)
        )
        ids = list(rows.values_list("recipient_id", flat=True)[:limit])
        if not ids:
            return [], now
        Handoff.objects.filter(recipient_id__in=ids).delete()
        taken = list(
            Recipient.objects.filter(id__in=ids, status=S.SUBMITTING, carrier=carrier)
            .order_by("id")
            .values_list("id", "message_id", "phone")
        )
        Recipient.objects.filter(id__in=[rid for rid, _, _ in taken]).update(
            claimed_at=now, updated_at=now
        )
    return taken, now


def carrier_process_heartbeat(*, carrier: str) -> None:
    try:
        cache.set(f"carrier-process:{carrier}", time.time(), timeout=HEARTBEAT_SECONDS)
    except Exception:  # noqa: BLE001 - without it the sweep only re-routes sooner
        logger.warning("cannot record the heartbeat of %s: cache unavailable", carrier)


def carrier_process_alive(*, carrier: str) -> bool:
    try:
        return cache.get(f"carrier-process:{carrier}") is not None
    except Exception:  # noqa: BLE001
        return False
