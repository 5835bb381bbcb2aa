"""SMPP throughput: submit_sm per second through SmppCarrier, and submit-to-sink receipt latency.

Starts the test SMSC (``tests/carriers/smsc.py``) in a child process, so it does not share a GIL
with the carrier, answering every submit_sm at once and following each with a delivery receipt.
Then submits N single-part messages in dispatcher-sized batches over one bind and reports:

* submit_sm/s: accepted submissions over the wall time of all ``send_messages`` calls;
* receipt latency: from the moment the SMSC received a submit_sm to the moment its receipt
  reached the carrier's sink (both read from CLOCK_MONOTONIC, which processes on one host
  share). The SMSC delivers instantly, so this is the carrier's own receipt path.

    python -m bench.smpp_throughput [--count 20000] [--window 50] [--batch 500]

With ``--api`` it measures the whole path instead: a fresh database, the web server, a Celery worker
and ``manage.py run_smpp`` bound straight to the SMSC child; ``--sends`` API sends of
``--recipients`` each, as fast as they are answered, and the time from the first send until
every recipient is ``delivered`` (receipts ingested). ``--throttle N`` makes the SMSC answer
ESME_RTHROTTLED past N submits per second, and ``--rate`` paces the bind (SMPP_RATE):

    python -m bench.smpp_throughput --api [--sends 20] [--recipients 1000] [--window 50]
        [--batch 500] [--throttle 0] [--rate 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    PYTHON,
    ROOT,
    bench_env,
    call,
    celery_beat,
    celery_worker,
    fresh_database,
    setup_account,
    start,
    stop,
    web_server,
)
from sms.carriers.base import DeliveryReceipt, OutboundSms, SubmitResult
from sms.carriers.smpp import SmppCarrier, normalise_message_id

TEXT = "Habari! Nambari yako ya uthibitisho ni 123456. Asante kwa kutumia Mifumo."


class TimingSink:
    """Notes when each receipt arrives; signals once ``expected`` have."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived: dict[str, float] = {}
        self.done = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, receipts: Sequence[DeliveryReceipt]) -> None:
        now = time.monotonic()
        with self._lock:
            for receipt in receipts:
                self.arrived.setdefault(receipt.carrier_message_id, now)
            if len(self.arrived) >= self.expected:
                self.done.set()


def start_smsc(
    timings: Path, receipts: bool, throttle: int = 0
) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "tests.carriers.smsc", "--timings", str(timings)]
    if receipts:
        command += ["--receipts", "DELIVRD"]
    if throttle:
        command += ["--throttle", str(throttle)]
    child = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    line = child.stdout.readline().split()
    if line[:1] != ["PORT"]:
        child.kill()
        raise SystemExit(f"the SMSC did not start: {line!r}")
    return child, int(line[1])


def stop_smsc(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)


def messages(count: int) -> list[OutboundSms]:
    return [
        OutboundSms(
            recipient_id=n,
            message_id=f"msg_bench{n // 1000:05d}",
            to=f"+2557{n:08d}",
            sender_id="MIFUMO",
            text=f"Habari! Nambari yako ya uthibitisho ni {n:06d}. Asante kwa kutumia Mifumo.",
        )
        for n in range(count)
    ]


def submit_all(
    carrier: SmppCarrier, batch: list[OutboundSms], size: int
) -> tuple[list[SubmitResult], float]:
    started = time.monotonic()
    results: list[SubmitResult] = []
    for offset in range(0, len(batch), size):
        results.extend(carrier.send_messages(batch[offset : offset + size]))
    return results, time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report_latency(sink: TimingSink, timings: Path) -> None:
    received = json.loads(timings.read_text(encoding="utf-8"))
    latencies = [
        (sink.arrived[normalise_message_id(message_id)] - at) * 1000
        for message_id, at in received.items()
        if normalise_message_id(message_id) in sink.arrived
    ]
    if not latencies:
        print("receipts: none reached the sink")
        return
    print(
        f"receipts: {len(latencies)} matched; submit -> sink latency "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )


def end_to_end(args: argparse.Namespace) -> None:
    """API sends to every recipient delivered, over run_smpp and a real Celery worker."""
    database = "mifumo_bench_smpp"
    fresh_database(database)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        child, port = start_smsc(workdir / "submits.json", receipts=True, throttle=args.throttle)
        env = bench_env(
            database,
            MIFUMO_CARRIER="smpp",
            SMPP_HOST="127.0.0.1",
            SMPP_PORT=str(port),
            SMPP_SYSTEM_ID="mifumo",
            SMPP_PASSWORD="secret",
            SMPP_WINDOW=str(args.window),
            SMPP_RATE=str(args.rate),
            CELERY_TASK_ALWAYS_EAGER="false",
            PYTHONUNBUFFERED="1",
        )
        processes: list[subprocess.Popen[bytes]] = []
        try:
            key = setup_account(env)
            for command, log in (
                (celery_worker(), "worker.log"),
                (celery_beat(workdir / "beat"), "beat.log"),
                ([PYTHON, "manage.py", "run_smpp", "--batch", str(args.batch)], "run_smpp.log"),
            ):
                processes.append(start(command, env, workdir / log))
            with web_server(env, workers=2) as base:
                time.sleep(3)  # the worker and the bind come up
                total = args.sends * args.recipients
                started = time.monotonic()
                ids = []
                for send in range(args.sends):
                    phones = [f"+2557{send:02d}{n:06d}" for n in range(args.recipients)]
                    status, body, _ = call(
                        base,
                        "/api/integration/v1/sms/send/",
                        key,
                        {
                            "message": "Habari! Nambari yako ni 123456. Asante.",
                            "recipients": phones,
                        },
                    )
                    assert status == 200, body
                    ids.append(body["data"]["message_id"])
                accepted = time.monotonic() - started
                waiting = set(ids)
                deadline = started + args.timeout
                while waiting and time.monotonic() < deadline:
                    for message_id in list(waiting):
                        _, body, _ = call(
                            base,
                            f"/api/integration/v1/sms/status/{message_id}/?per_page=1",
                            key,
                        )
                        if body["data"]["status"] in ("delivered", "failed", "partially_delivered"):
                            waiting.discard(message_id)
                    time.sleep(0.2)
                elapsed = time.monotonic() - started
                counts: dict[str, int] = {}
                for message_id in ids:
                    _, body, _ = call(
                        base, f"/api/integration/v1/sms/status/{message_id}/?per_page=1", key
                    )
                    for state, n in body["data"]["counts"].items():
                        counts[state] = counts.get(state, 0) + n
        finally:
            stop(*processes)
            stop_smsc(child)
        received = sorted(json.loads((workdir / "submits.json").read_text()).values())
    print(
        f"end to end: {args.sends} sends x {args.recipients} recipients, WINDOW={args.window}, "
        f"run_smpp --batch {args.batch}, SMPP_RATE={args.rate}, SMSC throttle "
        f"{args.throttle or 'none'}, {os.cpu_count()} CPUs"
    )
    print(f"sends answered in {accepted:.2f} s; recipients {counts}")
    delivered = counts.get("delivered", 0)
    print(
        f"{delivered}/{total} delivered in {elapsed:.2f} s from the first send "
        f"= {delivered / elapsed:,.0f} SMS/s" + ("" if not waiting else " (TIMED OUT)")
    )
    if len(received) > 1:
        rate = (len(received) - 1) / (received[-1] - received[0])
        print(f"the SMSC accepted {len(received)} submits at {rate:,.1f}/s, first to last")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500, help="messages per send_messages")
    parser.add_argument("--no-receipts", action="store_true")
    parser.add_argument("--api", action="store_true", help="end to end from the API")
    parser.add_argument("--sends", type=int, default=20)
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--throttle", type=int, default=0, help="SMSC: 0x58 past N/s")
    parser.add_argument("--rate", type=int, default=0, help="SMPP_RATE for the bind")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.api:
        end_to_end(args)
        return

    with tempfile.TemporaryDirectory() as scratch:
        timings = Path(scratch) / "submits.json"
        child, port = start_smsc(timings, receipts=not args.no_receipts)
        sink = TimingSink(expected=0 if args.no_receipts else args.count)
        carrier = SmppCarrier(
            name="bench",
            options={
                "HOST": "127.0.0.1",
                "PORT": port,
                "SYSTEM_ID": "mifumo",
                "PASSWORD": "secret",
                "WINDOW": args.window,
            },
            receipt_sink=sink,
        )
        try:
            carrier.open()
            results, elapsed = submit_all(carrier, messages(args.count), args.batch)
            sink.done.wait(timeout=60)
        finally:
            carrier.close()
            stop_smsc(child)
        accepted = sum(1 for r in results if r.accepted)
        print(
            f"{args.count} single-part messages, WINDOW={args.window}, batches of {args.batch}, "
            f"{os.cpu_count()} CPUs"
        )
        print(f"submit_sm: {accepted} accepted in {elapsed:.2f} s = {accepted / elapsed:,.0f}/s")
        if not args.no_receipts:
            report_latency(sink, timings)


if __name__ == "__main__":
    main()
