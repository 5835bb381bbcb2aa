"""Accepted -> delivered latency of single-recipient sends under a steady open-loop rate.

A fresh database, the web server (2 workers x 4 threads), one Celery worker (concurrency 2, every
queue) and beat, started with the shipped settings; the simulator carrier with no delivery
delay. Sends of one recipient each start on a fixed schedule (RATE a second for SECONDS,
from a pool of threads with httpx, whatever the answers take: open loop), then the run waits
for every recipient to be final. The latency of each recipient is read from the database:
its ``delivered_at`` (the carrier's time of delivery: for the simulator, its submit) minus
its message's ``created_at`` (the accepted send), and ``updated_at`` (when the platform
applied the receipt) minus the same. Also printed:
how many dispatch tasks the worker received for those sends.

    REDIS_URL=redis://127.0.0.1:6379/11 .venv/bin/python -m bench.latency [--rate 200]
        [--seconds 30] [--database mifumo_bench_latency]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import (
    bench_env,
    celery_beat,
    celery_worker,
    fresh_database,
    gauged,
    percentile,
    psql,
    setup_account,
    start,
    stop,
    web_server,
)

UNFINISHED = (
    "SELECT count(*) FROM sms_recipient WHERE status NOT IN ('delivered', 'failed', 'canceled')"
)


def drive(base: str, key: str, rate: float, seconds: float) -> tuple[int, int, float]:
    """Open loop: send number i starts at ``i / rate`` seconds. Returns (accepted, refused,
    the largest lag of a start behind its schedule in seconds)."""
    total = int(rate * seconds)
    accepted = refused = 0
    lag = 0.0
    lock = threading.Lock()
    local = threading.local()
    begin = time.monotonic() + 0.5

    def one(index: int) -> None:
        nonlocal accepted, refused, lag
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
            )
        due = begin + index / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        late = time.monotonic() - due
        # Ending in 5: clear of the simulator's special endings 0001-0004.
        phone = f"+25571{index * 10 + 5:07d}"
        reply = client.post(
            "/api/integration/v1/sms/send/", json={"message": "OTP 1234", "recipients": [phone]}
        )
        with lock:
            lag = max(lag, late)
            if reply.status_code == 200:
                accepted += 1
            else:
                refused += 1

    # Enough threads that a slow answer does not hold back the next start.
    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(total)))
    return accepted, refused, lag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="sends a second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--database", default="mifumo_bench_latency")
    options = parser.parse_args()

    database = options.database
    fresh_database(database)
    env = bench_env(
        database,
        MIFUMO_CARRIER="simulator",
        MIFUMO_SIMULATOR_DELAY="0",
        CELERY_TASK_ALWAYS_EAGER="false",
        PYTHONUNBUFFERED="1",
    )
    key = setup_account(env)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        # INFO on the worker: its "Task ... received" lines count the dispatch tasks.
        worker_env = {**env, "LOG_LEVEL": "INFO", "CELERY_LOG_LEVEL": "INFO"}
        processes = [
            start(celery_worker(loglevel="INFO"), worker_env, workdir / "worker.log"),
            start(celery_beat(workdir / "beat"), env, workdir / "beat.log"),
        ]
        try:
            with web_server(env, workers=2, threads=4) as base:
                time.sleep(3)  # the worker comes up
                started = time.monotonic()
                accepted, refused, lag = drive(base, key, options.rate, options.seconds)
                sending = time.monotonic() - started
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    rows = psql(database, UNFINISHED)
                    if int(rows[0][0]) == 0:
                        break
                    time.sleep(0.5)
            log = (workdir / "worker.log").read_text(errors="replace")
        finally:
            stop(*processes, timeout=20)

    # delivered_at is the carrier's time of delivery (the simulator's: its submit); the
    # receipt is recorded at updated_at, the last change of a delivered recipient.
    rows = psql(
        database,
        "SELECT EXTRACT(EPOCH FROM r.delivered_at - m.created_at), "
        "EXTRACT(EPOCH FROM r.updated_at - m.created_at) FROM sms_recipient r "
        "JOIN sms_message m ON m.id = r.message_id WHERE r.status = 'delivered'",
    )
    latencies = [float(row[0]) * 1000 for row in rows]
    recorded = [float(row[1]) * 1000 for row in rows]
    statuses = dict(psql(database, "SELECT status, count(*) FROM sms_recipient GROUP BY status"))
    received = sum(
        1
        for line in log.splitlines()
        if "sms.tasks.dispatch_queued[" in line and "received" in line
    )
    print(
        f"sends: {accepted} accepted, {refused} refused in {sending:.1f} s "
        f"({accepted / sending:.0f}/s; target {options.rate:.0f}/s, largest start lag {lag:.2f} s)"
    )
    print(f"recipients: {statuses}")
    print(f"dispatch_queued tasks received by the worker: {received} for {accepted} sends")
    for name, values in (
        ("accepted -> delivered (the carrier's time)", latencies),
        ("accepted -> delivered recorded (the receipt applied)", recorded),
    ):
        if values:
            print(
                f"{name}: "
                + ", ".join(f"p{p} {percentile(values, p):.0f} ms" for p in (50, 95, 99))
                + f", max {max(values):.0f} ms; {len(values)} delivered"
            )


if __name__ == "__main__":
    with gauged():
        main()
