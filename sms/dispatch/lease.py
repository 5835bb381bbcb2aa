"""Claim leases: a dispatcher holds the recipients it claimed (``submitting``) while their
``claimed_at`` is younger than ``MIFUMO_CLAIM_LEASE_SECONDS``; past it, the sweep takes them
back as a dead worker's (``sms.dispatch.sweeps``). A dispatcher that is alive but slow, a
batch waiting out a carrier's cap or a paced SMPP bind working through hundreds of
recipients, renews its claim before each carrier call once a third of the lease has gone,
and calls the carrier only for what it still holds. So a claim is kept as long as one wait
for the cap and one carrier call take less than two thirds of the lease (a second or so,
against 300 s by default). ``claimed_at`` is the claim's token: a recipient the sweep took
back, or that another dispatcher has claimed since, no longer has the value this dispatcher
set, and is left to whoever holds it now: it is not sent to a carrier, and a rejection of it
is not recorded (``sms.dispatch.record``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db import connection
from django.utils import timezone

from mifumo.db import column, table
from sms.models import Recipient

logger = logging.getLogger(__name__)

RENEW_AFTER = 1 / 3  # of the lease


class Leased(Protocol):
    recipient_id: int
    claimed_at: datetime | None  # None: not claimed under a lease (nothing to renew)


@functools.cache
def _renew_sql() -> str:
    recipient, id_, status, claimed_at = (
        table(Recipient),
        column(Recipient, "id"),
        column(Recipient, "status"),
        column(Recipient, "claimed_at"),
    )
    submitting = connection.schema_editor().quote_value(Recipient.Status.SUBMITTING.value)
    return f"""
UPDATE {recipient} AS r SET {claimed_at} = %s
FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, token)
WHERE r.{id_} = v.id AND r.{status} = {submitting} AND r.{claimed_at} = v.token
RETURNING r.{id_}
"""  # noqa: S608 - names from the model, the status quoted


def lease_keep(items: Sequence[Leased]) -> set[int]:
    """Renew this dispatcher's claim on ``items`` whose claim is past a third of the lease;
    the recipient ids it no longer holds (not to be sent to a carrier). Costs nothing while
    the claims are young."""
    now = timezone.now()
    due_before = now - timedelta(seconds=settings.MIFUMO_CLAIM_LEASE_SECONDS * RENEW_AFTER)
    due = [i for i in items if i.claimed_at is not None and i.claimed_at < due_before]
    if not due:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            _renew_sql(),
            [now, [i.recipient_id for i in due], [i.claimed_at for i in due]],
        )
        kept = {rid for (rid,) in cursor.fetchall()}
    lost = set()
    for item in due:
        if item.recipient_id in kept:
            item.claimed_at = now
        else:
            lost.add(item.recipient_id)
    if lost:
        logger.warning(
            "the claim on %d recipients ran out before they were sent; left to whoever holds "
            "them now",
            len(lost),
        )
    return lost
