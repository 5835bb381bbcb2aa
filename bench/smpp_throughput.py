"""SMPP throughput: submit_sm per second through SmppCarrier, and submit-to-sink receipt latency.

Starts the test SMSC (``tests/carriers/smsc.py``) in a child process, so it does not share a GIL
with the carrier, answering every submit_sm at once and following each with a delivery receipt.
Then submits N single-part messages in dispatcher-sized batches over one bind and reports:

* submit_sm/s: accepted submissions over the wall time of all ``send_messages`` calls;
* receipt latency: from the moment the SMSC received a submit_sm to the moment its receipt
  reached the carrier's sink (both read from CLOCK_MONOTONIC, which processes on one host
  share). The SMSC delivers instantly, so this is the carrier's own receipt path.

    python -m bench.smpp_throughput [--count 20000] [--window 10] [--batch 500]
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

from sms.carriers.base import DeliveryReceipt, OutboundSms, SubmitResult
from sms.carriers.smpp import SmppCarrier, normalise_message_id

ROOT = Path(__file__).resolve().parents[1]


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


def start_smsc(timings: Path, receipts: bool) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "tests.carriers.smsc", "--timings", str(timings)]
    if receipts:
        command += ["--receipts", "DELIVRD"]
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500, help="messages per send_messages")
    parser.add_argument("--no-receipts", action="store_true")
    args = parser.parse_args(argv)

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
