"""What the Python client adds to each call, next to raw httpx against the same server.

    .venv/bin/python -m bench.client_overhead [--calls 1500]

One web server on a fresh database; one connection, one call at a time. For each kind of call
both sides do the same request (the raw one with the same headers, an Idempotency-Key for
sends too) and read the JSON answer; the client also checks the envelope and builds its
typed result. Calls alternate between the two so that load from elsewhere hits both alike.
Prints the median and p90 per call of each and the client's overhead, and apart from the
network the client's own work per call: building the request and reading a recorded answer
into its typed result.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from mifumo_client import Mifumo, _ops
from mifumo_client._core import Call, read_answer

from bench.common import bench_env, fresh_database, percentile, setup_account, web_server

DATABASE = "mifumo_bench_client"
REDIS_DB = "10"
PHONES = [f"+25575400{n:03d}5" for n in range(10)]


def timed(call: Callable[[], Any], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def checked(response: httpx.Response) -> Any:
    body = response.json()
    if not body["success"]:
        raise RuntimeError(body)
    return body["data"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1500, help="calls per side and kind")
    args = parser.parse_args()

    fresh_database(DATABASE)
    redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], check=True, capture_output=True)
    env = bench_env(DATABASE, REDIS_URL=redis_url)
    key = setup_account(env)
    try:
        with web_server(env, workers=2) as base:
            measure(base, key, args.calls)
    finally:
        # The sends queued dispatch tasks that no worker will take.
        subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], check=True, capture_output=True)


def compare(
    bare: Callable[[], httpx.Response],
    typed: Callable[[], Any],
    build: Callable[[], Call[Any]],
    count: int,
) -> str:
    """One kind of call: both sides over the network, then the client's own work alone."""
    timed(bare, 20)  # warm both paths and the server
    timed(typed, 20)
    raw_samples: list[float] = []
    client_samples: list[float] = []
    for index in range(count):
        # Pairs, in turn raw or client first: load from elsewhere falls on both alike.
        pair = [(raw_samples, lambda: checked(bare())), (client_samples, typed)]
        for samples, call in pair if index % 2 else reversed(pair):
            samples += timed(call, 1)
    raw_p50, client_p50 = statistics.median(raw_samples), statistics.median(client_samples)
    overhead = (client_p50 - raw_p50) / raw_p50 * 100
    answer = bare()
    work = statistics.median(timed(lambda: read_answer(build(), answer), 2000))
    return (
        f"{raw_p50:12.2f}{client_p50:12.2f}"
        f"{percentile(raw_samples, 90):12.2f}{percentile(client_samples, 90):12.2f}"
        f"{overhead:11.1f}%{work * 1000:9.0f} µs"
    )


def measure(base: str, key: str, calls: int) -> None:
    root = f"{base}/api/integration/v1/"
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    raw = httpx.Client(timeout=30)
    client = Mifumo(key, base)
    message_id = client.sms.send("Benchmark", PHONES).message_id
    for _ in range(10):  # a hundred delivery-report rows
        client.sms.send("Benchmark", PHONES)

    def raw_send() -> httpx.Response:
        body = {"message": "Habari", "recipients": ["+255712345675"]}
        send_headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
        return raw.post(root + "sms/send/", json=body, headers=send_headers)

    reports = {"per_page": "100"}
    kinds: dict[str, tuple[Callable[[], Any], Callable[[], Any], Callable[[], Call[Any]]]] = {
        "balance (GET)": (
            lambda: raw.get(root + "sms/balance/", headers=headers),
            client.balance,
            _ops.balance,
        ),
        "status, 10 recipients (GET)": (
            lambda: raw.get(f"{root}sms/status/{message_id}/", headers=headers),
            lambda: client.sms.status(message_id),
            lambda: _ops.sms_status(message_id),
        ),
        "delivery reports, 100 rows (GET)": (
            lambda: raw.get(root + "sms/delivery-reports/", params=reports, headers=headers),
            lambda: next(client.sms.delivery_reports(page_size=100).pages()),
            lambda: _ops.sms_delivery_reports(page_size=100),
        ),
        "send, 1 recipient (POST)": (
            raw_send,
            lambda: client.sms.send("Habari", ["+255712345675"]),
            lambda: _ops.sms_send("Habari", ["+255712345675"]),
        ),
    }
    print(f"{calls} calls per side, alternating; milliseconds per call")
    columns = ("httpx p50", "client p50", "httpx p90", "client p90", "overhead", "client work")
    print(f"{'call':34}" + "".join(f"{c:>12}" for c in columns))
    for name, (bare, typed, build) in kinds.items():
        print(f"{name:34}" + compare(bare, typed, build, calls), flush=True)
    client.close()
    raw.close()


if __name__ == "__main__":
    main()
