"""Webhook deliveries per second through one real Celery worker, PostgreSQL and Redis.

Writes N events (one recipient each, so one event and one delivery per message) through the
real path: recipient update + ``recipients_status_changed_batch`` in one transaction, the outbox
receiver, a drain signalled on Redis after commit. No worker runs meanwhile. Then one worker
process starts on the ``webhooks`` queue; the clock runs from its "ready" line until every
delivery has succeeded at a local receiver (a separate process, HTTP/1.1 keep-alive,
answering 200 at once). Every delivery is signed, carries the decrypted sending key, is
claimed with a lease and logged as an attempt, as in production.

``--mode per-task`` queues one ``deliver`` task per delivery instead (the way retries still
go, and the way every delivery went before deliveries were sent in batches); ``--mode both``
alternates the two, ``--rounds`` times each, in one run, so both see the same machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mifumo_bench_webhooks \\
    REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/webhooks_bench.py [--events 3000] [--concurrency 2] \\
        [--mode batched|per-task|both] [--rounds 1]

The database is created and migrated when missing; the bench account's earlier rows are
deleted first and the ``webhooks`` queue is purged.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import celery_worker, free_port, gauged, start, stop  # noqa: E402
from bench.inprocess import django_setup, ensure_database, purge_queues  # noqa: E402

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mifumo_bench_webhooks")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")
# Production-like: no query log kept in memory. The worker inherits this environment, so it
# shares SECRET_KEY (and with it the keys that decrypt API keys and signing secrets).
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "webhooks-bench-" + "x" * 40)
os.environ["MIFUMO_WEBHOOK_ALLOW_PRIVATE"] = "true"  # the receiver is on 127.0.0.1
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"

ACCOUNT = "bench-webhooks"
PHONE = "+255712345678"


# --- the receiver, in its own process ----------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for a delayed ACK
    # (40 ms) and the bench would measure that instead of the worker.
    disable_nagle_algorithm = True
    counter: Any = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.counter.get_lock():
            self.counter.value += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def serve(port: int, counter: Any) -> None:
    _Handler.counter = counter
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    server.serve_forever()


# --- setup --------------------------------------------------------------------------------------


def fresh_account() -> tuple[Any, Any]:
    from integration.models import Account
    from integration.services import api_key_create
    from sms.models import Message
    from webhooks.models import Event

    account, _ = Account.objects.get_or_create(name=ACCOUNT)
    Event.objects.filter(account=account).delete()
    Message.objects.filter(account=account).delete()
    issued = api_key_create(account=account, name="bench", permission="write", test=False)
    return account, issued.api_key


def write_events(account: Any, api_key: Any, url: str, count: int, per_task: bool) -> float:
    from django.db import transaction
    from django.utils import timezone

    from sms.models import Message, Recipient
    from sms.signals import StatusChange, send_status_changes
    from webhooks import outbox

    # The drain signal is replaced, for this process only, by a task per delivery.
    outbox._enqueue = outbox._publish if per_task else ENQUEUE

    now = timezone.now()
    messages = Message.objects.bulk_create(
        Message(
            account=account,
            api_key=api_key,
            text="Habari",
            sender_id="MIFUMO",
            encoding="gsm7",
            segments=1,
            recipient_count=1,
            cost=Decimal("10.00"),
            webhook_url=url,
            created_at=now,
        )
        for _ in range(count)
    )
    recipients = Recipient.objects.bulk_create(
        Recipient(
            message=m,
            account=account,
            created_at=now,
            phone=PHONE,
            status="submitting",
            cost=Decimal("10.00"),
        )
        for m in messages
    )
    started = time.monotonic()
    for message, recipient in zip(messages, recipients, strict=True):
        with transaction.atomic():
            Recipient.objects.filter(pk=recipient.pk).update(status="sent", sent_at=now)
            send_status_changes(
                Recipient, [StatusChange(message.pk, account.pk, "sent", [recipient.pk])]
            )
    return time.monotonic() - started


def start_worker(concurrency: int, log: Path) -> subprocess.Popen[bytes]:
    command = celery_worker(
        "--hostname",
        "webhooks-bench@%h",
        "--without-gossip",
        "--without-mingle",
        loglevel="INFO",
        concurrency=concurrency,
        queues="webhooks",
    )
    return start(command, None, log, append=False)


def wait_ready(log: Path, worker: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "ready." in log.read_text(errors="replace"):
            return
        if worker.poll() is not None:
            break
        time.sleep(0.02)
    raise SystemExit(f"the worker did not start:\n{log.read_text(errors='replace')[-3000:]}")


ENQUEUE: Any = None


def main() -> None:
    global ENQUEUE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--mode", choices=("batched", "per-task", "both"), default="batched")
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args()

    ensure_database(os.environ["DATABASE_URL"])
    django_setup()
    from webhooks import outbox

    ENQUEUE = outbox._enqueue
    modes = ["batched", "per-task"] if options.mode == "both" else [options.mode]
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(options.rounds):
        for mode in modes:
            print(f"--- {mode}")
            results[mode].append(run(options.events, options.concurrency, mode == "per-task"))
    if len(modes) > 1 or options.rounds > 1:
        for mode, rates in results.items():
            print(f"{mode}: " + ", ".join(f"{r:.0f}" for r in rates) + " events/s")


def run(events: int, concurrency: int, per_task: bool) -> float:
    from webhooks.models import Delivery, DeliveryAttempt

    purge_queues(("webhooks",))
    counter = multiprocessing.Value("i", 0)
    port = free_port()
    receiver = multiprocessing.Process(target=serve, args=(port, counter), daemon=True)
    receiver.start()
    url = f"http://127.0.0.1:{port}/hook"

    account, api_key = fresh_account()
    writing = write_events(account, api_key, url, events, per_task)
    deliveries = Delivery.objects.filter(account=account)
    total = deliveries.count()
    print(f"wrote {total} events in {writing:.1f} s ({total / writing:.0f} events/s written)")

    log = Path(tempfile.mkdtemp(prefix="webhooks-bench-")) / "worker.log"
    worker = start_worker(concurrency, log)
    try:
        wait_ready(log, worker)
        started = time.monotonic()
        done = 0
        while done < total:
            time.sleep(0.05)
            done = deliveries.filter(status=Delivery.Status.SUCCEEDED).count()
            if time.monotonic() - started > 600:
                raise SystemExit(f"only {done} of {total} delivered after 10 minutes")
        elapsed = time.monotonic() - started
    finally:
        stop(worker)
        receiver.kill()

    latencies = list(
        DeliveryAttempt.objects.filter(delivery__account=account).values_list(
            "latency_ms", flat=True
        )
    )
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{total} events delivered in {elapsed:.2f} s by one worker "
        f"(--concurrency {concurrency}): "
        f"{total / elapsed:.0f} events/s"
    )
    print(f"receiver saw {counter.value} requests; attempts logged {len(latencies)}")
    print(f"HTTP latency per attempt: p50 {cuts[49]:.2f} ms, p95 {cuts[94]:.2f} ms")
    return total / elapsed


if __name__ == "__main__":
    with gauged():
        main()
