"""Claims: the dispatch task's round. Queued recipients move ``queued -> submitting`` in one
conditional statement with ``SKIP LOCKED``, so two workers never submit one recipient; the
claimed ones are routed and delivered (``sms.dispatch.failover``) until none is left or every
route is in temporary trouble.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sms import routing
from sms.dispatch.failover import Item, deliver
from sms.dispatch.record import RETRY_SECONDS, DispatchReport
from sms.models import Message, Recipient

logger = logging.getLogger(__name__)
S = Recipient.Status


def recipient_texts(message: Message, recipient_ids: Sequence[int]) -> dict[int, str]:
    """The rendered texts of a personalised message's recipients (none for a plain one)."""
    if not message.personalised:
        return {}
    return dict(Recipient.objects.filter(id__in=recipient_ids).values_list("id", "text"))


def claim(message_id: str, limit: int) -> list[tuple[int, str]]:
    now = timezone.now()
    with transaction.atomic():
        rows = (
            Recipient.objects.filter(message_id=message_id, status=S.QUEUED)
            .order_by("id")
            .select_for_update(skip_locked=True)
        )
        picked = list(rows.values_list("id", "phone")[:limit])
        if not picked:
            return []
        ids = [rid for rid, _ in picked]
        Recipient.objects.filter(id__in=ids, status=S.QUEUED).update(
            status=S.SUBMITTING, claimed_at=now, updated_at=now, attempts=F("attempts") + 1
        )
    return picked


def message_dispatch(*, message_id: str) -> DispatchReport:
    report = DispatchReport()
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        logger.warning("dispatch of unknown message %s", message_id)
        return report
    while True:
        picked = claim(message.id, settings.MIFUMO_DISPATCH_BATCH)
        if not picked:
            break
        texts = recipient_texts(message, [recipient_id for recipient_id, _ in picked])
        items = [
            Item(recipient_id, phone, message, route, text=texts.get(recipient_id, ""))
            for route, pairs in routing.group_by_route(picked, is_test=message.is_test).items()
            for recipient_id, phone in pairs
        ]
        outcome = deliver(items=items)
        report.add(outcome)
        if outcome.requeued:
            # Temporary trouble on every route: stop hammering; the task retries later.
            report.retry_in = RETRY_SECONDS
            break
    return report
