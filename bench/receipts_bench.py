"""Receipt ingestion: delivery receipts per second turned into recipient status updates and
webhook events, on PostgreSQL, through the body of the receipts task.

N recipients are ``sent``, spread over messages of --per-message recipients, each message
with a webhook URL (so the webhooks app's receiver writes an event and a delivery for every
message and status in each batch, in the same transaction). Their receipts arrive shuffled
in batches of --batch (what the SMPP receipt thread and the simulator hand to the receipts
task), as the task's JSON payload: parsing, matching to carrier ids, the multipart check, the
status update, the signal and the webhook outbox all count.

``--order sent`` (default): receipts come back roughly in the order the messages went out,
each within a few hundred places of its submission, as handsets answer at different speeds.
``--order shuffled``: every batch mixes receipts of many messages, the worst case for the
webhook outbox, which writes one event per message and status in each batch.

``--times`` sets how many distinct receipt times a batch holds: ``minute`` (SMPP receipt
texts carry minutes, the common case), ``distinct`` (every receipt its own time, the worst
case for grouping updates).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mifumo_bench_receipts \\
    REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/receipts_bench.py [--receipts 20000] [--batch 500]

The database is created and migrated when missing; the bench account's earlier messages are
deleted first.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.inprocess import django_setup, ensure_database, purge_queues  # noqa: E402

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mifumo_bench_receipts")
# Its own Redis database: the webhook delivery tasks queued after each commit go there (and
# are purged at the end) rather than into a shared broker.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")
os.environ.setdefault("DEBUG", "0")  # no query log kept in memory
os.environ.setdefault("SECRET_KEY", "receipts-bench-" + "x" * 40)
os.environ.setdefault("LOG_LEVEL", "WARNING")

ACCOUNT = "bench-receipts"
CARRIER = "smsc"


def sent_recipients(count: int, per_message: int) -> list[str]:
    """Recipients already sent, with their carrier ids; returns the ids in carrier order."""
    from django.utils import timezone

    from integration.models import Account
    from sms.models import CarrierMessage, Message, Recipient

    account, _ = Account.objects.get_or_create(name=ACCOUNT)
    Message.objects.filter(account=account).delete()
    now = timezone.now()
    messages = Message.objects.bulk_create(
        Message(
            account=account,
            text="Habari",
            sender_id="MIFUMO",
            encoding="GSM-7",
            segments=1,
            recipient_count=per_message,
            cost=Decimal("10.00") * per_message,
            webhook_url="http://127.0.0.1:9/hook",
            created_at=now,
        )
        for _ in range((count + per_message - 1) // per_message)
    )
    recipients = Recipient.objects.bulk_create(
        (
            Recipient(
                message=messages[n // per_message],
                account=account,
                created_at=now,
                phone=f"+2557{n:08d}",
                status=Recipient.Status.SENT,
                carrier=CARRIER,
                carrier_message_id=f"{ACCOUNT}-{n:08x}",
                cost=Decimal("10.00"),
                sent_at=now,
            )
            for n in range(count)
        ),
        batch_size=5000,
    )
    CarrierMessage.objects.filter(carrier=CARRIER).delete()
    CarrierMessage.objects.bulk_create(
        (
            CarrierMessage(
                carrier=CARRIER, carrier_message_id=r.carrier_message_id, recipient_id=r.pk
            )
            for r in recipients
        ),
        batch_size=5000,
    )
    return [r.carrier_message_id for r in recipients]


def arrival(carrier_ids: list[str], order: str, batch: int) -> list[str]:
    rng = random.Random(7)
    if order == "shuffled":
        shuffled = list(carrier_ids)
        rng.shuffle(shuffled)
        return shuffled
    # Sorted by submission position plus a delay of up to one batch.
    return [
        cid
        for _, cid in sorted((n + rng.uniform(0, batch), cid) for n, cid in enumerate(carrier_ids))
    ]


def payloads(
    carrier_ids: list[str], batch: int, times: str, order: str
) -> list[list[dict[str, Any]]]:
    from django.utils import timezone

    from sms.carriers.base import DeliveryReceipt, DeliveryStatus
    from sms.receipts import receipt_to_dict

    shuffled = arrival(carrier_ids, order, batch)
    base = timezone.now().replace(second=0, microsecond=0)
    receipts = [
        DeliveryReceipt(
            carrier=CARRIER,
            carrier_message_id=carrier_id,
            # One in twenty fails, as handsets that are off do.
            status=DeliveryStatus.UNDELIVERABLE if n % 20 == 0 else DeliveryStatus.DELIVERED,
            timestamp=base + timedelta(milliseconds=n) if times == "distinct" else base,
            error_code="001" if n % 20 == 0 else None,
            raw={"stat": "DELIVRD"},
        )
        for n, carrier_id in enumerate(shuffled)
    ]
    return [
        [receipt_to_dict(r) for r in receipts[start : start + batch]]
        for start in range(0, len(receipts), batch)
    ]


def ingest(batches: list[list[dict[str, Any]]]) -> tuple[int, float]:
    from sms.tasks import ingest_receipts

    started = time.monotonic()
    changed = sum(ingest_receipts.run(payload) for payload in batches)
    return changed, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receipts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--times", choices=("minute", "distinct"), default="minute")
    parser.add_argument("--order", choices=("sent", "shuffled"), default="sent")
    options = parser.parse_args()

    ensure_database(os.environ["DATABASE_URL"])
    django_setup()
    from sms.models import Recipient
    from webhooks.models import Event

    purge_queues()
    carrier_ids = sent_recipients(options.receipts, options.per_message)
    batches = payloads(carrier_ids, options.batch, options.times, options.order)
    changed, elapsed = ingest(batches)
    final = Recipient.objects.filter(
        carrier=CARRIER, status__in=[Recipient.Status.DELIVERED, Recipient.Status.FAILED]
    ).count()
    assert changed == final == options.receipts, (changed, final)
    events = Event.objects.filter(account__name=ACCOUNT).count()
    print(
        f"receipts: {changed} ingested in {elapsed:.2f} s = {changed / elapsed:,.0f} receipts/s "
        f"(batches of {options.batch}, {options.per_message} per message, order "
        f"{options.order}, times {options.times}; {events} webhook events written)"
    )
    purge_queues()


if __name__ == "__main__":
    main()
