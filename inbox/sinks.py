"""Where carriers' inbound messages land (``settings.MIFUMO_INBOUND_SINK``): whole messages
go through the inbound pipeline; parts wait in ``InboundPart`` until the last one arrives,
and parts that never complete are stored as they are after ``MIFUMO_INBOUND_PART_TIMEOUT``
seconds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from inbox.models import InboundMessage, InboundPart
from inbox.services import inbound_receive, inbound_receive_many
from sms.carriers.inbound import InboundSms

logger = logging.getLogger(__name__)

Group = tuple[str, str, str, int, int]  # carrier, sender, destination, reference, total


def store_inbound(items: Sequence[InboundSms]) -> None:
    """Store a carrier's batch in one transaction: when anything fails nothing is kept and
    the carrier, not yet answered, delivers the batch again."""
    whole = [item for item in items if item.concatenation is None]
    parts = [item for item in items if item.concatenation is not None]
    touched: dict[Group, None] = {}
    with transaction.atomic():
        if whole:
            inbound_receive_many(items=whole)
        if parts:
            now = timezone.now()
            InboundPart.objects.bulk_create(
                [
                    InboundPart(
                        carrier=item.carrier,
                        sender=item.sender,
                        destination=item.destination,
                        reference=part.reference,
                        total=part.total,
                        part=part.part,
                        text=item.text.replace("\x00", ""),  # PostgreSQL's text holds none
                        received_at=item.received_at or now,
                    )
                    for item in parts
                    for part in [item.concatenation]
                    if part is not None
                ],
                ignore_conflicts=True,  # a part delivered twice counts once
            )
            for item in parts:
                assert item.concatenation is not None
                part = item.concatenation
                group = (item.carrier, item.sender, item.destination, part.reference, part.total)
                touched[group] = None
        for group in touched:
            _assemble(group, complete_only=True)
    if touched:
        inbound_flush_stale_parts()


def _receive(item: InboundSms, text: str, **extra: object) -> InboundMessage:
    message, _ = inbound_receive(
        carrier=item.carrier,
        sender=item.sender,
        destination=item.destination,
        text=text,
        carrier_message_id=item.carrier_message_id,
        received_at=item.received_at,
        raw={**item.raw, **extra},
        incomplete=bool(extra.get("incomplete")),
    )
    return message


def _assemble(group: Group, *, complete_only: bool) -> InboundMessage | None:
    """Store the group's parts as one message (and forget them) when all have arrived, or,
    with ``complete_only`` off, whatever has arrived."""
    carrier, sender, destination, reference, total = group
    parts = list(
        InboundPart.objects.select_for_update()
        .filter(
            carrier=carrier,
            sender=sender,
            destination=destination,
            reference=reference,
            total=total,
        )
        .order_by("part")
    )
    complete = len(parts) == total
    if not parts or (complete_only and not complete):
        return None
    item = InboundSms(
        carrier=carrier,
        sender=sender,
        destination=destination,
        text="",
        received_at=min(p.received_at for p in parts),
    )
    extra: dict[str, object] = {"reference": reference, "total": total}
    if not complete:
        extra.update(incomplete=True, parts_received=[p.part for p in parts])
        logger.warning(
            "inbound from %s to %s: %d of %d parts after the timeout; stored as they are",
            sender,
            destination,
            len(parts),
            total,
        )
    message = _receive(item, "".join(p.text for p in parts), **extra)
    InboundPart.objects.filter(pk__in=[p.pk for p in parts]).delete()
    return message


def inbound_flush_stale_parts(*, older_than: float | None = None) -> int:
    """Store the messages whose first part is older than the timeout with the parts that
    came; returns how many."""
    timeout = settings.MIFUMO_INBOUND_PART_TIMEOUT if older_than is None else older_than
    cutoff = timezone.now() - timedelta(seconds=timeout)
    groups = (
        InboundPart.objects.values_list("carrier", "sender", "destination", "reference", "total")
        .annotate(first=Min("received_at"))
        .filter(first__lt=cutoff)
        .order_by()
    )
    stored = 0
    for carrier, sender, destination, reference, total, _ in groups:
        with transaction.atomic():
            group = (carrier, sender, destination, reference, total)
            if _assemble(group, complete_only=False) is not None:
                stored += 1
    return stored
