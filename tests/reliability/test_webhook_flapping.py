"""A webhook receiver flapping during a stream of sends: every second or two it turns from
answering 200, to answering 500 and 503, to being down (its port closed, open connections cut,
so connections are refused), to taking requests and hanging up before it answers (as a
receiver that crashes after storing the event), and back. The sends go through the API, a real
Celery worker and the simulator, whose receipts make ``message.sent`` and ``message.delivered``
events for an account endpoint; retries are shortened to one or two seconds.

Delivery is at least once: once the receiver is steady every event has reached it, every
delivery has succeeded exactly once in the outbox, nothing is pending. An event reaches the
receiver more than once only when the receiver took a request whose answer the sender never
had: per delivery, at most one extra arrival per attempt that ended without an HTTP answer,
and at least one per request the receiver took and hung up on.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.reliability.services import (
    BatchSender,
    PostgresCluster,
    RedisServer,
    Stack,
    post,
    query,
    scalar,
)
from tests.workers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FLAP_SECONDS = 25
SEND_INTERVAL = 0.1
PER_SEND = 2  # recipients per message
PHASE_SECONDS = (1.0, 2.0)  # each phase of the receiver lasts between these
UP, ERRORING, DOWN, HANGING_UP = "up", "erroring", "down", "hanging up"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the senders' connection pools expect
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver.opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver.closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.server.receiver.take(body, self.headers.get("X-Mifumo-Delivery-Id", ""))
        if status is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        with contextlib.suppress(OSError):
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: FlappingReceiver


class FlappingReceiver:
    """An HTTP receiver on 127.0.0.1 that is UP (200), ERRORING (500 and 503 in turn), DOWN
    (nothing listens; connections open when it went down are cut) or HANGING_UP (takes each
    request, then closes the connection without answering). A request is taken (its event
    counted as received) when it is answered 200, before the answer is written, or hung up
    on."""

    def __init__(self) -> None:
        self.port = _port_outside_the_ephemeral_range()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.mode = DOWN
        self.received: list[tuple[str, str]] = []  # (event id, delivery id) of each taken
        self.requests = 0
        self.errors = 0  # answered 500 or 503
        self.cut = 0  # read but neither taken nor answered: the receiver went down meanwhile
        self.hung_up: Counter[str] = Counter()  # delivery id -> requests taken, not answered
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server: _Server | None = None

    def turn(self, mode: str) -> None:
        with self._lock:
            previous, self.mode = self.mode, mode
        if mode == DOWN and previous != DOWN:
            self._stop()
        elif mode != DOWN and previous == DOWN:
            self._start()

    def take(self, body: bytes, delivery_id: str) -> int | None:
        event_id = str(json.loads(body)["event_id"])
        with self._lock:
            self.requests += 1
            if self.mode == DOWN:
                self.cut += 1
                return None
            if self.mode == ERRORING:
                self.errors += 1
                return 500 if self.errors % 2 else 503
            self.received.append((event_id, delivery_id))
            if self.mode == HANGING_UP:
                self.hung_up[delivery_id] += 1
                return None
            return 200

    def event_ids(self) -> set[str]:
        with self._lock:
            return {event_id for event_id, _ in self.received}

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _start(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.receiver = self
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._open)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.turn(DOWN)


def retry_schedule(flapping: float) -> str:
    """Retries one or two seconds apart whose sum outlasts the flapping by 20 s, so the last
    attempts of any delivery made while the receiver flaps fall after it."""
    return ",".join(["1"] * 5 + ["2"] * math.ceil((flapping + 15) / 2))


def _port_outside_the_ephemeral_range() -> int:
    """A free port below 32768: no outgoing connection takes it while the receiver is down."""
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port for the receiver")


@pytest.fixture
def receiver() -> Iterator[FlappingReceiver]:
    server = FlappingReceiver()
    try:
        yield server
    finally:
        server.close()


def test_a_flapping_receiver_gets_every_event_at_least_once_and_repeats_only_unanswered(
    services: tuple[Stack, PostgresCluster, RedisServer], receiver: FlappingReceiver
) -> None:
    stack, cluster, _redis = services
    env = {
        "MIFUMO_WEBHOOK_ALLOW_PRIVATE": "true",
        "MIFUMO_WEBHOOK_TIMEOUT": "5",
        "MIFUMO_WEBHOOK_RETRY_SCHEDULE": retry_schedule(FLAP_SECONDS),
    }
    key = stack.setup_account()
    _, base = stack.web(workers=2, **env)
    stack.worker("w1", CONCURRENCY="4", **env)
    created = post(base, "webhooks/", key, {"url": receiver.url})
    assert created.status == 201, created.body

    sender = BatchSender(base, key, per_send=PER_SEND, interval=SEND_INTERVAL, network="74")
    sender.start()
    durations = random.Random(7)
    phases: Counter[str] = Counter()
    until = time.monotonic() + FLAP_SECONDS
    try:
        for mode in itertools.cycle((UP, ERRORING, DOWN, HANGING_UP)):
            if time.monotonic() >= until:
                break
            receiver.turn(mode)
            phases[mode] += 1
            time.sleep(durations.uniform(*PHASE_SECONDS))
    finally:
        sender.done.set()
        sender.join(30)
        receiver.turn(UP)
    steady = time.monotonic()

    assert sender.replies and all(r.status == 200 for _, r in sender.replies), [
        (r.status, r.body[:200]) for _, r in sender.replies if r.status != 200
    ]
    recipients = len(sender.replies) * PER_SEND

    def settled() -> bool:
        delivered = scalar(
            cluster.url, "SELECT count(*) FROM sms_recipient WHERE status = 'delivered'"
        )
        pending = scalar(
            cluster.url, "SELECT count(*) FROM webhooks_delivery WHERE status = 'pending'"
        )
        events = scalar(cluster.url, "SELECT count(*) FROM webhooks_event")
        return delivered == recipients and pending == 0 and events == len(receiver.event_ids())

    try:
        wait_until(settled, timeout=90, interval=0.5)
    except AssertionError:
        statuses = query(
            cluster.url, "SELECT status, count(*) FROM webhooks_delivery GROUP BY status"
        )
        raise AssertionError(f"not settled: deliveries {statuses}\n{stack.logs()}") from None
    drained = time.monotonic() - steady

    events = {row[0] for row in query(cluster.url, "SELECT id FROM webhooks_event")}
    deliveries = dict(query(cluster.url, "SELECT id, event_id FROM webhooks_delivery"))
    assert scalar(cluster.url, "SELECT count(*) FROM sms_recipient") == recipients
    # One delivery per event (one endpoint), every one succeeded exactly once, none pending.
    assert sorted(deliveries.values()) == sorted(events)
    assert query(cluster.url, "SELECT status, count(*) FROM webhooks_delivery GROUP BY status") == [
        ("succeeded", len(events))
    ]
    attempts = query(
        cluster.url,
        "SELECT delivery_id, count(*), count(*) FILTER (WHERE succeeded), "
        "count(*) FILTER (WHERE status_code IS NULL), "
        "count(*) FILTER (WHERE status_code >= 500) FROM webhooks_deliveryattempt "
        "GROUP BY delivery_id",
    )
    assert len(attempts) == len(events)
    assert all(succeeded == 1 for _, _, succeeded, _, _ in attempts)
    unanswered = {delivery: n for delivery, _, _, n, _ in attempts}

    # At least once: every event reached the receiver, with its delivery's id.
    arrivals = Counter(receiver.received)
    assert {event for event, _ in arrivals} == events
    assert all(deliveries[delivery] == event for event, delivery in arrivals)
    # A repeat only where an attempt the receiver took ended without an answer to the sender,
    # and one for each request it hung up on.
    for (_event, delivery), count in arrivals.items():
        assert count <= 1 + unanswered[delivery], (delivery, count, unanswered[delivery])
        assert count >= 1 + receiver.hung_up[delivery], (delivery, count)

    duplicates = sum(count - 1 for count in arrivals.values())
    hung_up = sum(receiver.hung_up.values())
    total_attempts = sum(n for _, n, _, _, _ in attempts)
    no_answer = sum(n for _, _, _, n, _ in attempts)
    server_errors = sum(n for _, _, _, _, n in attempts)
    print(
        f"\nwebhook flapping: {recipients} recipients in {len(sender.replies)} sends over "
        f"{FLAP_SECONDS}s; receiver phases {dict(phases)}; {len(events)} events, "
        f"{total_attempts} delivery attempts ({server_errors} answered 5xx, {no_answer} without "
        f"an answer); receiver saw {receiver.requests} requests ({receiver.errors} answered "
        f"5xx, {receiver.cut} cut while going down, {hung_up} taken and hung up on, "
        f"{len(receiver.received) - hung_up} answered 200); {duplicates} duplicates "
        f"({len(arrivals)} events received); all delivered {drained:.1f}s after the receiver "
        "was steady"
    )
    assert server_errors > 0 and no_answer > 0, "the receiver never failed a delivery"
    assert hung_up <= duplicates <= no_answer
