"""Dispatch throughput: recipients per second that one process claims, routes, submits to the
simulator and records, on PostgreSQL; then, as a separate figure, the ingestion of the
receipts the simulator produced.

One message of N queued recipients (webhook URL set, so every recorded batch also writes its
webhook event and delivery in the same transaction, as in production). The clock runs around
``message_dispatch``: claims of MIFUMO_DISPATCH_BATCH recipients (SKIP LOCKED), routing by
prefix (a few routes in the table), the simulator's ``send_messages``, ``results_record``
(status, carrier ids, CarrierMessage rows, signal -> webhook outbox), a SubmitAttempt row per
batch. The simulator's receipts are collected instead of queued, then ingested in the batches
the receipts task gets (one per dispatched batch) and timed on their own.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mifumo_bench_dispatch \\
    REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python bench/dispatch_bench.py [--recipients 20000] [--batch 500] [--queued]

The database is created and migrated when missing; the bench account's earlier messages are
deleted first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.inprocess import django_setup, ensure_database, purge_queues  # noqa: E402

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mifumo_bench_dispatch")
# Its own Redis database: the webhook delivery tasks queued after each commit go there (and
# are purged at the end) rather than into a shared broker.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")
os.environ.setdefault("DEBUG", "0")  # no query log kept in memory
os.environ.setdefault("SECRET_KEY", "dispatch-bench-" + "x" * 40)
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["MIFUMO_SIMULATOR_DELAY"] = "0"
os.environ["MIFUMO_CARRIER"] = "simulator"

ACCOUNT = "bench-dispatch"


def make_message(count: int) -> Any:
    from django.utils import timezone

    from integration.models import Account
    from sms.models import CarrierRoute, Message, Recipient

    account, _ = Account.objects.get_or_create(name=ACCOUNT)
    Message.objects.filter(account=account).delete()
    # Routes that all end at the simulator, so the lookup does real work.
    for prefix in ("25574", "25575", "25576", "25578", "25568", "25565", "25571", "25562"):
        CarrierRoute.objects.update_or_create(prefix=prefix, defaults={"carriers": ["simulator"]})
    now = timezone.now()
    message = Message.objects.create(
        account=account,
        text="Habari, malipo yako yamepokelewa. Asante!",
        sender_id="MIFUMO",
        encoding="GSM-7",
        segments=1,
        recipient_count=count,
        cost=Decimal("10.00") * count,
        webhook_url="http://127.0.0.1:9/hook",
        created_at=now,
    )
    networks = ("74", "75", "76", "78", "68", "65", "71", "62", "77")
    Recipient.objects.bulk_create(
        (
            Recipient(
                message=message,
                account=account,
                created_at=now,
                # Numbers ending in 67: no simulator magic suffix.
                phone=f"+255{networks[n % len(networks)]}{n:05d}67",
                status=Recipient.Status.QUEUED,
                cost=Decimal("10.00"),
            )
            for n in range(count)
        ),
        batch_size=5000,
    )
    return message


def profiled(prefix: str | None, name: str, function: Any, **kwargs: Any) -> Any:
    if not prefix:
        return function(**kwargs)
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(function, **kwargs)
    finally:
        profiler.dump_stats(f"{prefix}-{name}.prof")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--queued",
        action="store_true",
        help="time queued_dispatch (the dispatch_queued task: claims across messages) "
        "instead of message_dispatch",
    )
    parser.add_argument(
        "--profile", help="write cProfiles to PREFIX-dispatch.prof and PREFIX-receipts.prof"
    )
    options = parser.parse_args()
    os.environ["MIFUMO_DISPATCH_BATCH"] = str(options.batch)

    ensure_database(os.environ["DATABASE_URL"])
    django_setup()
    from django.conf import settings

    from sms import dispatch
    from sms.carriers import get_carrier
    from sms.carriers.base import DeliveryReceipt
    from sms.models import Recipient, SubmitAttempt
    from sms.receipts import receipt_to_dict
    from sms.tasks import ingest_receipts
    from webhooks.models import Event

    settings.MIFUMO_DISPATCH_BATCH = options.batch
    purge_queues()
    message = make_message(options.recipients)
    batches: list[list[DeliveryReceipt]] = []
    get_carrier("simulator").receipt_sink = lambda receipts: batches.append(list(receipts))

    started = time.monotonic()
    if options.queued:
        report = profiled(options.profile, "dispatch", dispatch.queued_dispatch)
    else:
        report = profiled(
            options.profile, "dispatch", dispatch.message_dispatch, message_id=message.id
        )
    elapsed = time.monotonic() - started
    sent = Recipient.objects.filter(message=message, status="sent").count()
    assert report.submitted == sent == options.recipients, (report, sent)
    attempts = SubmitAttempt.objects.filter(message=message).count()
    events = Event.objects.filter(message_id=message.id).count()
    print(
        f"dispatch: {sent} recipients in {elapsed:.2f} s = {sent / elapsed:,.0f} recipients/s "
        f"({attempts} batches of {options.batch}, {events} webhook events written)"
    )

    payloads = [[receipt_to_dict(r) for r in batch] for batch in batches]
    started = time.monotonic()
    changed = profiled(
        options.profile, "receipts", lambda: sum(ingest_receipts.run(p) for p in payloads)
    )
    elapsed = time.monotonic() - started
    delivered = Recipient.objects.filter(message=message, status="delivered").count()
    assert changed == delivered == options.recipients, (changed, delivered)
    events = Event.objects.filter(message_id=message.id).count()
    print(
        f"receipts: {delivered} ingested in {elapsed:.2f} s = {delivered / elapsed:,.0f} "
        f"receipts/s (batches of {options.batch}; {events} webhook events in all)"
    )
    purge_queues()


if __name__ == "__main__":
    main()
