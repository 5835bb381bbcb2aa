"""A worker killed with SIGKILL in the middle of a 10,000-recipient message: a new worker and
the sweep finish it; nothing is lost, and at most one claimed batch per worker process is
submitted twice."""

from __future__ import annotations

import signal
import time

import pytest

from tests.reliability.services import (
    PostgresCluster,
    RedisServer,
    Stack,
    post,
    query,
    scalar,
)
from tests.workers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RECIPIENTS = 10_000
BATCH = 200
# The doomed worker's pool. It holds at most CONCURRENCY tasks at a time (prefetch multiplier
# 1, tasks acknowledged after they ran), each over at most one batch: a dispatcher works one
# claimed batch at a time (and one whose claim came back full wakes a helper, so every process
# may be dispatching), a receipts task carries one submitted batch's receipts. A SIGKILL can
# therefore strand up to one batch per process: claimed but not recorded (the sweep takes it
# back and it is claimed again) or recorded but its receipts lost with their task (expired).
CONCURRENCY = 2
IN_FLIGHT = CONCURRENCY * BATCH
RATE = 1000  # parts per second at the simulator: 10 s for the whole message
FINAL = ("delivered", "failed", "canceled")


def phones(count: int) -> list[str]:
    # Ending in 5 keeps clear of the simulator's magic endings 0001-0004.
    return [f"+25571{i * 10 + 5:07d}" for i in range(count)]


def test_sigkilled_worker_loses_nothing_and_repeats_at_most_one_batch(
    services: tuple[Stack, PostgresCluster, RedisServer],
) -> None:
    stack, cluster, _redis = services
    key = stack.setup_account()
    _, base = stack.web(workers=1)
    doomed = stack.worker(
        "doomed",
        CONCURRENCY=str(CONCURRENCY),
        MIFUMO_DISPATCH_BATCH=str(BATCH),
        MIFUMO_SIMULATOR_RATE=str(RATE),
    )
    reply = post(base, "sms/send/", key, {"message": "Habari", "recipients": phones(RECIPIENTS)})
    assert reply.status == 200, reply.body

    wait_until(lambda: sent(cluster.url) >= RECIPIENTS * 0.3, timeout=60, interval=0.05)
    doomed.kill(signal.SIGKILL)
    at_kill = counts(cluster.url)
    assert 0 < at_kill.get("queued", 0) + at_kill.get("submitting", 0) < RECIPIENTS, at_kill

    killed = time.monotonic()
    # A lease long enough that the rescuer's own claims never look abandoned to its sweep.
    rescue = {
        "MIFUMO_CLAIM_LEASE_SECONDS": "5",
        "MIFUMO_SWEEP_SECONDS": "2",
        "MIFUMO_DISPATCH_BATCH": str(BATCH),
        # The receipts task the killed worker had reserved stays unacknowledged in Redis for
        # the broker's visibility timeout (an hour); until then its recipients stay sent.
        # A short receipt timeout makes them final (failed, EXPIRED) within the test.
        "MIFUMO_RECEIPT_TIMEOUT_SECONDS": "20",
    }
    stack.worker("rescuer", **rescue)
    stack.beat(**rescue)
    wait_until(lambda: final(cluster.url) == RECIPIENTS, timeout=150, interval=0.5)
    recovery = time.monotonic() - killed

    assert scalar(cluster.url, "SELECT count(*) FROM sms_recipient") == RECIPIENTS
    by_status = counts(cluster.url)
    claimed_twice = scalar(cluster.url, "SELECT count(*) FROM sms_recipient WHERE attempts > 1")
    recorded_twice = scalar(
        cluster.url,
        "SELECT count(*) FROM (SELECT recipient_id FROM sms_carriermessage "
        "GROUP BY recipient_id HAVING count(*) > 1) AS d",
    )
    expired = scalar(cluster.url, "SELECT count(*) FROM sms_recipient WHERE error_code = 'EXPIRED'")
    print(
        f"\nworker kill: at kill {at_kill}; final {by_status}; claimed twice {claimed_twice}; "
        f"recorded twice by the carrier {recorded_twice}; expired {expired}; "
        f"all final {recovery:.1f}s after the kill"
    )
    assert claimed_twice <= IN_FLIGHT
    assert recorded_twice <= IN_FLIGHT
    assert by_status.get("delivered", 0) + expired == RECIPIENTS
    assert expired <= IN_FLIGHT


def counts(url: str) -> dict[str, int]:
    return dict(query(url, "SELECT status, count(*) FROM sms_recipient GROUP BY status"))


def sent(url: str) -> int:
    return sum(n for status, n in counts(url).items() if status in ("sent", *FINAL))


def final(url: str) -> int:
    return sum(n for status, n in counts(url).items() if status in FINAL)
