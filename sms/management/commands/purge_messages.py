"""Delete messages older than the retention period, with everything hanging off them
(recipients, carrier ids, submit attempts, webhook events and deliveries), optionally
archiving each message and its recipients to a gzip JSON-lines file first.

Messages are taken in id order, in batches, each batch in its own short transaction, so a
purge of millions of rows holds no lock for long and can be stopped and run again at any
time. A message is left alone while any recipient is not final yet, or while a webhook about
it is still waiting to be delivered.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from sms.models import CarrierMessage, Message, Recipient

UNFINISHED = (
    Recipient.Status.SCHEDULED,
    Recipient.Status.QUEUED,
    Recipient.Status.SUBMITTING,
    Recipient.Status.SENT,
)
# A batch also stops growing at this many recipients, so that a run of 10,000-recipient
# messages still makes short transactions.
RECIPIENTS_PER_BATCH = 50_000


@dataclass
class PurgeReport:
    messages: int = 0
    recipients: int = 0
    batches: int = 0


def _fields(instance: models.Model) -> dict[str, Any]:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


def purgeable(cutoff: datetime) -> models.QuerySet[Message]:
    """Messages created before ``cutoff`` whose recipients are all final and whose webhooks
    are all delivered (or given up)."""
    unfinished = Recipient.objects.filter(message_id=OuterRef("pk"), status__in=UNFINISHED)
    rows = Message.objects.filter(created_at__lt=cutoff).exclude(Exists(unfinished))
    if apps.is_installed("webhooks"):
        event_model = apps.get_model("webhooks", "Event")
        waiting = event_model.objects.filter(
            message_id=OuterRef("pk"), deliveries__status="pending"
        )
        rows = rows.exclude(Exists(waiting))
    return rows


def next_batch(cutoff: datetime, after: str, size: int) -> list[str]:
    candidates = list(
        purgeable(cutoff)
        .filter(id__gt=after)
        .order_by("id")
        .values_list("id", "recipient_count")[:size]
    )
    batch: list[str] = []
    recipients = 0
    for message_id, count in candidates:
        if batch and recipients + count > RECIPIENTS_PER_BATCH:
            break
        batch.append(message_id)
        recipients += count
    return batch


def archive_lines(message_ids: list[str]) -> list[str]:
    """One JSON object per message: its fields, and its recipients with their carrier ids."""
    parts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for part in CarrierMessage.objects.filter(recipient__message_id__in=message_ids).order_by(
        "recipient_id", "part"
    ):
        row = _fields(part)
        del row["id"], row["recipient_id"]
        parts[part.recipient_id].append(row)
    recipients: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for recipient in Recipient.objects.filter(message_id__in=message_ids).order_by("id"):
        row = _fields(recipient)
        del row["message_id"]
        row["parts"] = parts.get(recipient.pk, [])
        recipients[recipient.message_id].append(row)
    lines = []
    for message in Message.objects.filter(id__in=message_ids).order_by("id"):
        row = _fields(message)
        row["recipients"] = recipients.get(message.pk, [])
        lines.append(json.dumps(row, cls=DjangoJSONEncoder, ensure_ascii=False))
    return lines


def purge_batch(message_ids: list[str], archive: gzip.GzipFile | None) -> tuple[int, int]:
    """Archive (when asked) and delete one batch in one transaction; returns the messages and
    recipients deleted."""
    with transaction.atomic():
        recipients = Recipient.objects.filter(message_id__in=message_ids).count()
        if archive is not None:
            lines = archive_lines(message_ids)
            archive.write("".join(f"{line}\n" for line in lines).encode())
            # On disk before the rows are gone: an archive may repeat a message after an
            # interrupted run, but never miss one.
            archive.flush()
            os.fsync(archive.fileno())
        _, deleted = Message.objects.filter(id__in=message_ids).delete()
    return deleted.get(Message._meta.label, 0), recipients


class Command(BaseCommand):
    help = (
        "Delete messages older than N days (default MIFUMO_RETENTION_DAYS) whose recipients "
        "are all final, optionally archiving them to a gzip JSON-lines file first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than-days",
            type=int,
            default=None,
            help="age in days (default: MIFUMO_RETENTION_DAYS)",
        )
        parser.add_argument(
            "--archive",
            metavar="PATH.jsonl.gz",
            default=None,
            help="append the purged messages with their recipients to this gzip file first",
        )
        parser.add_argument("--batch-size", type=int, default=1000, help="messages per batch")
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would go, change nothing"
        )

    def handle(
        self,
        *args: Any,
        older_than_days: int | None,
        archive: str | None,
        batch_size: int,
        dry_run: bool,
        **options: Any,
    ) -> None:
        days = settings.MIFUMO_RETENTION_DAYS if older_than_days is None else older_than_days
        if days < 1:
            raise CommandError("--older-than-days must be at least 1")
        if not 1 <= batch_size <= 10_000:
            raise CommandError("--batch-size must be between 1 and 10000")
        cutoff = timezone.now() - timedelta(days=days)
        if dry_run:
            report = self._count(cutoff, batch_size)
            self.stdout.write(
                f"Dry run: would purge {report.messages} messages "
                f"({report.recipients} recipients) created before {cutoff:%Y-%m-%d %H:%M} UTC"
            )
            return
        if archive:
            folder = os.path.dirname(os.path.abspath(archive))
            if not os.path.isdir(folder):
                raise CommandError(f"No such folder for the archive: {folder}")
        report = PurgeReport()
        sink: gzip.GzipFile | None = gzip.open(archive, "ab") if archive else None  # noqa: SIM115
        try:
            after = ""
            while True:
                batch = next_batch(cutoff, after, batch_size)
                if not batch:
                    break
                messages, recipients = purge_batch(batch, sink)
                report.messages += messages
                report.recipients += recipients
                report.batches += 1
                after = batch[-1]
                if options.get("verbosity", 1) >= 2:
                    self.stdout.write(f"batch {report.batches}: {messages} messages")
        finally:
            if sink is not None:
                sink.close()
        where = f"; archived to {archive}" if archive else ""
        self.stdout.write(
            f"Purged {report.messages} messages ({report.recipients} recipients) created "
            f"before {cutoff:%Y-%m-%d %H:%M} UTC in {report.batches} batches{where}"
        )

    @staticmethod
    def _count(cutoff: datetime, batch_size: int) -> PurgeReport:
        report = PurgeReport()
        after = ""
        while True:
            batch = next_batch(cutoff, after, batch_size)
            if not batch:
                return report
            report.messages += len(batch)
            report.recipients += Recipient.objects.filter(message_id__in=batch).count()
            report.batches += 1
            after = batch[-1]
