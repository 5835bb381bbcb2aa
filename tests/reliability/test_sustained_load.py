"""A bounded run of the sustained mixed workload (bench/load.py runs the long one): sends,
status polls, delivery reports and contact searches at a steady rate against the web server, a
Celery worker and beat. No request fails, the tail stays bounded, every message is
delivered once the load stops, and no process keeps growing after warming up."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.services import (
    PostgresCluster,
    RedisServer,
    Stack,
    call,
    query,
    rss_mb,
)
from tests.workers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RATE = 20  # requests per second, open loop
WARM_UP_SECONDS = 20
LOAD_SECONDS = 70
KINDS = ["send", "status", "status", "reports", "search"]
# Bounds for a shared CI machine; bench/load.py measures the figures on a quiet one.
P99_LIMIT = 0.5  # seconds
GROWTH_LIMIT_MB = 40  # per process tree, from the end of the warm-up to the end of the load


class Load:
    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key
        self.message_ids: list[str] = []
        self.answers: list[tuple[str, int, float]] = []
        self.lock = threading.Lock()

    def one(self, kind: str, n: int) -> None:
        if kind == "status" and not self.message_ids:
            kind = "search"
        if kind == "send":
            body = {"message": "Load", "recipients": [f"+25571{n * 10 + 5:07d}"]}
            reply = call(self.base, "sms/send/", self.key, body)
            if reply.status == 200:
                with self.lock:
                    self.message_ids.append(reply.json()["data"]["message_id"])
        elif kind == "status":
            with self.lock:
                message_id = random.choice(self.message_ids[-200:])
            reply = call(self.base, f"sms/status/{message_id}/", self.key)
        elif kind == "reports":
            reply = call(self.base, "sms/delivery-reports/?per_page=50", self.key)
        else:
            reply = call(self.base, "contacts/search/?q=Customer%201", self.key)
        with self.lock:
            self.answers.append((kind, reply.status, reply.seconds))

    def run(self, seconds: float, start: int) -> int:
        """Start RATE requests a second for ``seconds``, whatever their latency."""
        n = start
        with ThreadPoolExecutor(max_workers=32) as pool:
            next_at = time.monotonic()
            deadline = next_at + seconds
            while next_at < deadline:
                pool.submit(self.one, KINDS[n % len(KINDS)], n)
                n += 1
                next_at += 1 / RATE
                time.sleep(max(0.0, next_at - time.monotonic()))
        return n


def test_a_steady_mixed_load_fails_nothing_drains_and_levels_off(
    services: tuple[Stack, PostgresCluster, RedisServer],
) -> None:
    stack, cluster, _redis = services
    key = stack.setup_account()
    web, base = stack.web(workers=2)
    worker = stack.worker("w1")
    beat = stack.beat()
    for n in range(100):
        reply = call(
            base,
            "contacts/create/",
            key,
            {"name": f"Customer {n}", "phone_number": f"+25575{n:07d}", "tags": ["load"]},
        )
        assert reply.status == 201, reply.body[:300]

    pids = {"web": web.popen.pid, "worker": worker.popen.pid, "beat": beat.popen.pid}
    load = Load(base, key)
    sent_so_far = load.run(WARM_UP_SECONDS, 0)
    warm = {name: rss_mb(pid) for name, pid in pids.items()}
    load.answers.clear()
    load.run(LOAD_SECONDS, sent_so_far)
    end = {name: rss_mb(pid) for name, pid in pids.items()}
    stopped = time.monotonic()

    statuses = Counter((kind, status) for kind, status, _ in load.answers)
    failed = {pair: n for pair, n in statuses.items() if pair[1] >= 400 or pair[1] == 0}
    assert not failed, (failed, stack.logs())
    latencies = sorted(seconds for _, _, seconds in load.answers)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    assert len(latencies) >= RATE * LOAD_SECONDS * 0.95

    def drained() -> bool:
        pending = query(
            cluster.url,
            "SELECT count(*) FROM sms_recipient WHERE status IN ('queued', 'submitting', 'sent')",
        )[0][0]
        return bool(pending == 0)

    wait_until(drained, timeout=60, interval=0.5)
    drained_after = time.monotonic() - stopped
    delivered = query(cluster.url, "SELECT count(*) FROM sms_recipient WHERE status = 'delivered'")[
        0
    ][0]
    print(
        f"\nsustained load: {len(latencies)} requests at {RATE}/s for {LOAD_SECONDS}s "
        f"(after {WARM_UP_SECONDS}s of warm-up), 0 failed, p50 "
        f"{latencies[len(latencies) // 2] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
        f"{delivered} delivered, drained {drained_after:.1f}s after the load; RSS MB "
        + ", ".join(f"{name} {warm[name]:.0f} -> {end[name]:.0f}" for name in pids)
    )
    assert p99 <= P99_LIMIT
    assert delivered == len(load.message_ids)
    for name in pids:
        assert end[name] - warm[name] <= GROWTH_LIMIT_MB, (name, warm[name], end[name])
