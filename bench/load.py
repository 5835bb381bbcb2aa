"""A sustained mixed workload against the whole stack: the web server with the shipped worker
settings (2 processes x 4 threads), a Celery worker (concurrency 2, every queue) and beat on
PostgreSQL and Redis, the simulator carrier.

    .venv/bin/python -m bench.load --minutes 5 --rate 500

Open-loop: requests are due at a fixed rate whatever the answers' latency (a third sends, the
rest status polls, delivery reports and contact searches), and each one's latency runs from
the moment it was due, so a server that falls behind shows it in the percentiles instead of
slowing the load down. The requests go over a pool of kept-alive connections, driven by one
thread with non-blocking sockets (``Pool``): the generator shares the machine's two cores
with the stack, and a thread per connection with ``http.client`` took 0.49 ms of CPU per
request where this takes less. Prints
per-kind p50/p99 and error counts, the rate achieved, the resident memory of every process
at start, by minute and at the end, how long the queue takes to drain once the load stops,
and how long receipts took to be applied after their submission.

The tables start empty, and until PostgreSQL's statistics catch up (autovacuum analyzes a
table once it changed by a tenth, checking every minute) the planner takes the account's
recipients for a handful and reads a delivery-reports page by sorting all of them instead of
walking the index: 8 ms instead of 0.15 ms after 5,000 sends. ``--analyze-at S`` runs
``ANALYZE`` once, S seconds in, to measure the load as it is once statistics exist.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import socket
import subprocess
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from bench.common import (
    ROOT,
    celery_beat,
    celery_worker,
    fresh_account,
    gauged,
    percentile,
    psql,
    start,
    stop,
    web_server,
)
from bench.jasmin_bench import Classifier, CpuMeter, Proc, cmdline, mifumo_processes
from tests.reliability.services import rss_mb

# The offered load stops once this many seconds of it wait unanswered.
BACKLOG_SECONDS = 10
# CPU is read from this many seconds into the load.
CPU_FROM = 15


def memory(pids: dict[str, int]) -> dict[str, float]:
    return {name: rss_mb(pid) for name, pid in pids.items()}


def stack_processes(port: int, database: str) -> Classifier:
    """The stack's processes by part, and this load generator's own."""
    web_postgres_redis = mifumo_processes(port, database)
    me = os.getpid()

    def classify(proc: Proc) -> str | None:
        if proc.pid == me:
            return "load"
        line = cmdline(proc.pid)
        if "-m celery -A mifumo worker" in line:
            return "worker"
        if "-m celery -A mifumo beat" in line:
            return "beat"
        return web_postgres_redis(proc)

    return classify


def print_tail_over_time(timeline: list[tuple[float, float]], window: float = 15) -> None:
    """p99 and the slowest request of each ``window`` seconds: a tail made by a few stalls
    (a checkpoint, a vacuum, a periodic task) shows in a few windows, a server near its
    capacity in all of them."""
    windows: dict[int, list[float]] = defaultdict(list)
    for at, ms in timeline:
        windows[int(at // window)].append(ms)
    cells = [
        f"{percentile(values, 99):.0f}/{max(values):.0f}" for _, values in sorted(windows.items())
    ]
    print(f"  p99/max ms by {window:g} s: {' '.join(cells)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--rate", type=float, default=60, help="requests per second")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--analyze-at",
        type=float,
        default=None,
        help="seconds into the load to ANALYZE the database once, as autovacuum would "
        "within a minute or two (default: never; the tables start empty)",
    )
    args = parser.parse_args()
    database = args.database = "mifumo_bench_load"
    env, key = fresh_account(database, 4, MIFUMO_SIMULATOR_DELAY="1")
    logs = ROOT / "var" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    worker = start(celery_worker(), env, logs / "load-worker.log", append=False)
    beat = start(
        celery_beat(logs / "load-beat-schedule"), env, logs / "load-beat.log", append=False
    )
    try:
        with web_server(env, workers=args.web_workers, threads=args.web_threads) as base:
            run(base, key, args, {"worker": worker.pid, "beat": beat.pid}, env)
    finally:
        stop(worker, beat)


def run(
    base: str, key: str, args: argparse.Namespace, pids: dict[str, int], env: dict[str, str]
) -> None:
    port = base.rsplit(":", 1)[-1]
    web_pid = int(
        subprocess.run(
            ["pgrep", "-f", "-o", f"mifumo.web --host 127.0.0.1 --port {port} "],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()[0]
    )
    pids = {"web": web_pid, **pids}
    pool = Pool(base, key, args.connections, lambda kind, due_at, status, body: None)
    for n in range(200):
        pool.call(
            "POST",
            "/api/integration/v1/contacts/create/",
            {"name": f"Customer {n}", "phone_number": f"+25575{n:07d}", "tags": ["load"]},
        )
    message_ids: list[str] = []
    latencies: dict[str, list[float]] = defaultdict(list)
    # (seconds into the run the request was due, its latency): the tail over time.
    timeline: list[tuple[float, float]] = []
    statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def request(kind: str, n: int) -> bytes:
        if kind == "send":
            # Ending in 5: never one of the simulator's magic numbers (0001-0004).
            body = {"message": f"Load {n}", "recipients": [f"+25571{n % 1000000:06d}5"]}
            return pool.request("POST", "/api/integration/v1/sms/send/", body)
        if kind == "status" and message_ids:
            message_id = random.choice(message_ids[-500:])
            return pool.request("GET", f"/api/integration/v1/sms/status/{message_id}/")
        if kind == "reports" or kind == "status":
            return pool.request("GET", "/api/integration/v1/sms/delivery-reports/?per_page=50")
        return pool.request("GET", "/api/integration/v1/contacts/search/?q=Customer%201")

    def answered(kind: str, due_at: float, status: int, body: bytes) -> None:
        ms = (time.monotonic() - due_at) * 1000
        latencies[kind].append(ms)
        timeline.append((due_at - started, ms))
        statuses[kind][status] += 1
        if kind == "send" and status == 200:
            message_ids.append(json.loads(body)["data"]["message_id"])

    pool.answered = answered
    started = time.monotonic()
    start_memory = memory(pids)
    # RSS every minute, to tell warm-up from a leak: the growth should stop, not go on.
    samples: list[tuple[float, dict[str, float]]] = [(0.0, start_memory)]
    # From 15 s in (past the warm-up and the ANALYZE) to the end of the load.
    meter = CpuMeter(stack_processes(int(port), args.database))
    meter_from = threading.Timer(CPU_FROM, meter.start)
    meter_from.daemon = True
    meter_from.start()
    if args.analyze_at is not None:
        analyze = threading.Timer(args.analyze_at, psql, (args.database, "ANALYZE"))
        analyze.daemon = True
        analyze.start()
    # A third sends; the rest status polls, delivery reports and contact searches.
    kinds = ["send", "status", "reports", "send", "status", "search"]
    interval = 1 / args.rate
    deadline = started + args.minutes * 60
    next_at = started
    n = 0
    fell_behind = None
    while next_at < deadline:
        if pool.waiting() > args.rate * BACKLOG_SECONDS:
            # Past its capacity the server only builds a backlog; stop offering load.
            fell_behind = time.monotonic() - started
            break
        kind = kinds[n % len(kinds)]
        pool.submit(kind, next_at, request(kind, n))
        n += 1
        if time.monotonic() - started >= 60 * len(samples):
            samples.append(((time.monotonic() - started) / 60, memory(pids)))
        next_at += interval
        pool.serve_until(next_at)
    pool.serve_until(time.monotonic() + 120, drained=True)
    load_end = time.monotonic()
    meter_from.cancel()
    cpu = meter.stop() if meter.first else {}
    end_memory = memory(pids)
    drained = wait_drained(env)
    total = sum(len(v) for v in latencies.values())
    errors = sum(c for s in statuses.values() for code, c in s.items() if code >= 400)
    everything = [ms for v in latencies.values() for ms in v]
    print(
        f"{total} requests in {args.minutes:g} min at {args.rate:g}/s offered "
        f"({total / (load_end - started):.0f}/s answered); "
        f"errors {errors}; overall p50 {percentile(everything, 50):.0f} ms, "
        f"p99 {percentile(everything, 99):.0f} ms"
    )
    for kind, values in sorted(latencies.items()):
        print(
            f"  {kind:8s} n={len(values):6d} p50 {percentile(values, 50):6.1f} ms "
            f"p99 {percentile(values, 99):6.1f} ms statuses {dict(statuses[kind])}"
        )
    print_tail_over_time(timeline)
    if cpu:
        span = load_end - started - CPU_FROM
        counted = sum(1 for at, _ in timeline if at >= CPU_FROM)
        print(
            f"  CPU from {CPU_FROM} s to the end, % of a core (ms per request): "
            + ", ".join(
                f"{name} {100 * seconds / span:.0f}% ({1000 * seconds / counted:.2f})"
                for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1])
            )
        )
    if fell_behind is not None:
        print(
            f"  FELL BEHIND: {BACKLOG_SECONDS} s of requests were waiting for a connection "
            f"after {fell_behind:.0f} s; the load stopped there"
        )
    for name in pids:
        print(f"  RSS {name:8s} start {start_memory[name]:7.1f} MB  end {end_memory[name]:7.1f} MB")
    print("  RSS by minute (MB): " + ", ".join(pids))
    for minute, sample in samples:
        print(f"    {minute:5.1f}  " + "  ".join(f"{sample[name]:7.1f}" for name in pids))
    print(
        f"queue drained {drained - load_end:.1f} s after the load stopped"
        if drained
        else "queue NOT drained within 180 s"
    )
    # How long receipts took to be applied once sent (the simulator's delay included): a
    # backlog of receipts shows here, not in the requests' latencies.
    lags = [
        float(row[0]) * 1000
        for row in psql(
            args.database,
            "SELECT EXTRACT(EPOCH FROM updated_at - sent_at) FROM sms_recipient "
            "WHERE status = 'delivered'",
        )
    ]
    if lags:
        print(
            "sent -> receipt applied: "
            + ", ".join(f"p{p} {percentile(lags, p) / 1000:.2f} s" for p in (50, 99))
            + f", max {max(lags) / 1000:.2f} s (the simulator's delay is 1 s)"
        )


def wait_drained(env: dict[str, str]) -> float | None:
    database = env["DATABASE_URL"].rsplit("/", 1)[1]
    sql = "SELECT count(*) FROM sms_recipient WHERE status IN ('queued', 'submitting', 'sent')"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if int(psql(database, sql)[0][0]) == 0:
            return time.monotonic()
        time.sleep(0.2)
    return None


class Pool:
    """Kept-alive HTTP/1.1 connections to the server, driven from one thread: requests wait in
    order for a free connection; ``serve_until`` sends and reads until a moment, calling
    ``answered(kind, due_at, status, body)`` for each answer."""

    def __init__(
        self,
        base: str,
        key: str,
        connections: int,
        answered: Callable[[str, float, int, bytes], None],
    ) -> None:
        url = urllib.parse.urlsplit(base)
        self.address = (url.hostname or "127.0.0.1", url.port or 80)
        self.head = f"Host: {self.address[0]}:{self.address[1]}\r\nAuthorization: Bearer {key}\r\n"
        self.answered = answered
        self.selector = selectors.DefaultSelector()
        self.free = [self._connect() for _ in range(connections)]
        self.queue: deque[tuple[str, float, bytes]] = deque()
        self.busy = 0

    def _connect(self) -> _Connection:
        sock = socket.create_connection(self.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        return _Connection(sock)

    def request(self, method: str, path: str, body: Any = None) -> bytes:
        """The bytes of a request."""
        data = b"" if body is None else json.dumps(body).encode()
        typed = "Content-Type: application/json\r\n" if data else ""
        start = f"{method} {path} HTTP/1.1\r\n{self.head}{typed}Content-Length: {len(data)}\r\n\r\n"
        return start.encode() + data

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request, answered before it returns (for the setup)."""
        got: list[tuple[int, bytes]] = []
        answered, self.answered = (
            self.answered,
            lambda kind, due, status, data: got.append((status, data)),
        )
        try:
            self.submit("call", time.monotonic(), self.request(method, path, body))
            self.serve_until(time.monotonic() + 60, drained=True)
        finally:
            self.answered = answered
        status, data = got[0]
        return status, json.loads(data)

    def submit(self, kind: str, due_at: float, request: bytes) -> None:
        self.queue.append((kind, due_at, request))
        self._start()

    def waiting(self) -> int:
        """Requests due that wait for a free connection."""
        return len(self.queue)

    def _start(self) -> None:
        while self.queue and self.free:
            connection = self.free.pop()
            connection.begin(*self.queue.popleft())
            self._send(connection)
            self.selector.register(connection.sock, selectors.EVENT_READ, connection)
            self.busy += 1

    def _send(self, connection: _Connection) -> None:
        # A request is a few hundred bytes: the socket's buffer takes it whole.
        try:
            sent = connection.sock.send(connection.outgoing)
        except (BrokenPipeError, ConnectionResetError):
            # The server closed the kept-alive connection: once more on a new one.
            connection.sock.close()
            connection.sock = self._connect().sock
            sent = connection.sock.send(connection.outgoing)
        if sent != len(connection.outgoing):
            raise OSError(f"sent {sent} of {len(connection.outgoing)} bytes of a request")

    def serve_until(self, moment: float, *, drained: bool = False) -> None:
        """Read answers until ``moment`` (or, with ``drained``, until none is outstanding);
        those already in are read even when ``moment`` has passed."""
        while not (drained and not self.busy and not self.queue):
            for key, _ in self.selector.select(max(0.0, moment - time.monotonic())):
                self._receive(key.data)
            if time.monotonic() >= moment:
                return

    def _receive(self, connection: _Connection) -> None:
        try:
            chunk = connection.sock.recv(65536)
        except BlockingIOError:
            return
        if not chunk:
            if connection.incoming or connection.resent:
                raise OSError("the server closed a connection during an answer")
            # The server closed the kept-alive connection before it read the request.
            self.selector.unregister(connection.sock)
            connection.sock.close()
            connection.sock = self._connect().sock
            connection.resent = True
            self._send(connection)
            self.selector.register(connection.sock, selectors.EVENT_READ, connection)
            return
        answer = connection.read(chunk)
        if answer is None:
            return
        self.selector.unregister(connection.sock)
        self.busy -= 1
        self.free.append(connection)
        self.answered(connection.kind, connection.due_at, *answer)
        self._start()


class _Connection:
    """One connection's request in flight and the bytes of its answer so far."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.kind = ""
        self.due_at = 0.0
        self.outgoing = b""
        self.incoming = bytearray()
        self.resent = False

    def begin(self, kind: str, due_at: float, request: bytes) -> None:
        self.kind, self.due_at, self.outgoing = kind, due_at, request
        self.incoming.clear()
        self.resent = False

    def read(self, chunk: bytes) -> tuple[int, bytes] | None:
        """The answer (status, body) once ``chunk`` completes it, else None."""
        self.incoming += chunk
        end = self.incoming.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.incoming[:end]).decode("latin-1").lower().split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields = dict(line.split(":", 1) for line in head[1:] if ":" in line)
        body = bytes(self.incoming[end + 4 :])
        if "content-length" in fields:
            length = int(fields["content-length"])
            return (status, body[:length]) if len(body) >= length else None
        if fields.get("transfer-encoding", "").strip() == "chunked":
            return _dechunked(status, body)
        raise OSError(f"an answer with neither a length nor chunks: {head}")


def _dechunked(status: int, body: bytes) -> tuple[int, bytes] | None:
    """A chunked body, once its last chunk is in."""
    parts: list[bytes] = []
    at = 0
    while True:
        line_end = body.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(body[at:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            return (status, b"".join(parts)) if body.find(b"\r\n", start) >= 0 else None
        if len(body) < start + size + 2:
            return None
        parts.append(body[start : start + size])
        at = start + size + 2


if __name__ == "__main__":
    with gauged():
        main()
