"""A dedicated carrier's own process (``run_smpp``): one round takes the recipients handed
off to it, submits them through it (failing over along each route past it) and records;
recipients that went back to queued get a dispatcher run for when their backoff ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sms import routing
from sms.dispatch.failover import Item, deliver_here
from sms.dispatch.handoffs import handoff_take
from sms.dispatch.record import DispatchReport
from sms.dispatch.wake import dispatch_later
from sms.models import Message, Recipient

logger = logging.getLogger(__name__)


def handoff_dispatch(
    *, carrier: str, limit: int, stop: Callable[[], bool] | None = None
) -> DispatchReport | None:
    """One round of a dedicated carrier's process: take handoffs, submit them through
    ``carrier`` (failing over along each route past it), record. None when there was none."""
    taken, claimed_at = handoff_take(carrier=carrier, limit=limit)
    if not taken:
        return None
    messages = Message.objects.in_bulk({message_id for _, message_id, _ in taken})
    personalised = [rid for rid, message_id, _ in taken if messages[message_id].personalised]
    texts = dict(Recipient.objects.filter(id__in=personalised).values_list("id", "text"))
    items = []
    for recipient_id, message_id, phone in taken:
        message = messages[message_id]
        after = routing.carriers_after(carrier, phone, is_test=message.is_test)
        text = texts.get(recipient_id, "")
        route = (carrier, *after)
        items.append(Item(recipient_id, phone, message, route, text=text, claimed_at=claimed_at))
    report = deliver_here(carrier=carrier, items=items, stop=stop)
    if report.retry_at is not None:
        # Back to queued with a backoff: the dispatcher takes them when the first is due.
        dispatch_later(report.retry_at)
    return report
