"""Redis (cache and broker) stopped during a stream of sends: the API keeps accepting and
storing, rate limits fail open, and once Redis is back the sweep dispatches everything."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from tests.reliability.services import (
    PostgresCluster,
    RedisServer,
    Reply,
    Stack,
    is_envelope,
    post,
    query,
)
from tests.workers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

OUTAGE_SECONDS = 12
SEND_INTERVAL = 0.2


class Sender(threading.Thread):
    """Sends one single-recipient message every SEND_INTERVAL, recording each reply with the
    phase it was sent in."""

    def __init__(self, base: str, key: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.key = key
        self.phase = "before"
        self.replies: list[tuple[str, Reply]] = []
        self.done = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.done.is_set():
            phase = self.phase
            phone = f"+25571{n * 10 + 5:07d}"
            reply = post(self.base, "sms/send/", self.key, {"message": "hi", "recipients": [phone]})
            if self.phase != phase:
                # Redis stopped or started while this request was in flight: it may have
                # seen either side, so it belongs to no phase.
                phase = "switching"
            self.replies.append((phase, reply))
            n += 1
            time.sleep(SEND_INTERVAL)


def test_sends_during_a_redis_outage_are_stored_and_dispatched_later(
    services: tuple[Stack, PostgresCluster, RedisServer],
) -> None:
    stack, cluster, redis = services
    key = stack.setup_account()
    _, base = stack.web(workers=2)
    stack.worker("w1")
    stack.beat(MIFUMO_SWEEP_SECONDS="2")

    sender = Sender(base, key)
    sender.start()
    try:
        time.sleep(3)
        # Sends racing the shutdown may see Redis either way; they are counted apart.
        sender.phase = "stopping"
        redis.stop()
        sender.phase = "outage"
        down = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        sender.phase = "after"
        redis.start()
        back = time.monotonic()
        time.sleep(3)
    finally:
        sender.done.set()
        sender.join(30)

    replies = sender.replies
    by_phase = {
        phase: Counter(r.status for p, r in replies if p == phase)
        for phase in ("before", "stopping", "switching", "outage", "after")
    }
    during = [r for p, r in replies if p == "outage"]
    slowest = max(r.seconds for r in during)
    print(f"\nredis outage: replies by phase and status {by_phase}; slowest during {slowest:.2f}s")
    assert during, "no send during the outage"
    assert all(r.status == 200 and is_envelope(r) for _, r in replies), by_phase
    assert all(r.json()["success"] and r.json()["data"]["status"] == "queued" for _, r in replies)
    # Rate limits fail open: served, without X-RateLimit headers while the cache is down.
    assert not any("X-RateLimit-Limit" in r.headers for r in during)
    assert all("X-RateLimit-Limit" in r.headers for p, r in replies if p == "before")
    assert "X-RateLimit-Limit" in replies[-1][1].headers, "rate limits never came back"

    ids = [r.json()["data"]["message_id"] for _, r in replies]
    stored = {row[0] for row in query(cluster.url, "SELECT id FROM sms_message")}
    assert set(ids) <= stored

    def undelivered() -> list[tuple[object, ...]]:
        return query(
            cluster.url,
            "SELECT message_id, status FROM sms_recipient WHERE status <> 'delivered'",
        )

    # Queued work whose task never reached the broker waits for the sweep's idle threshold.
    wait_until(lambda: not undelivered(), timeout=150, interval=1)
    recovered = time.monotonic() - back
    assert query(cluster.url, "SELECT count(*) FROM sms_recipient")[0][0] == len(ids)
    duplicates = query(
        cluster.url,
        "SELECT count(*) FROM (SELECT recipient_id FROM sms_carriermessage "
        "GROUP BY recipient_id HAVING count(*) > 1) AS d",
    )[0][0]
    assert duplicates == 0
    print(
        f"redis outage: down {back - down:.1f}s; all {len(ids)} recipients delivered "
        f"{recovered:.1f}s after Redis returned"
    )
