"""Beat down while scheduled messages fall due: they go once beat is back, late but once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.reliability.services import PostgresCluster, RedisServer, Stack, post, query
from tests.workers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

MESSAGES = 20
PER_MESSAGE = 5


def test_messages_due_while_beat_is_down_go_once_after_it_returns(
    services: tuple[Stack, PostgresCluster, RedisServer],
) -> None:
    stack, cluster, _redis = services
    key = stack.setup_account()
    _, base = stack.web(workers=1)
    stack.worker("w1", MIFUMO_CLAIM_LEASE_SECONDS="5")
    beat = stack.beat(MIFUMO_DUE_SECONDS="1", MIFUMO_SWEEP_SECONDS="2")

    when = datetime.now(UTC) + timedelta(seconds=4)
    ids = []
    for n in range(MESSAGES):
        phones = [f"+25571{n * 1000 + i * 10 + 5:07d}" for i in range(PER_MESSAGE)]
        reply = post(
            base,
            "sms/send/",
            key,
            {"message": f"later {n}", "recipients": phones, "schedule_time": when.isoformat()},
        )
        assert reply.status == 200, reply.body
        assert reply.json()["data"]["status"] == "scheduled"
        ids.append(reply.json()["data"]["message_id"])
    beat.kill()

    # Well past the schedule time with nobody to release the messages.
    time.sleep(max((when - datetime.now(UTC)).total_seconds(), 0) + 4)
    assert statuses(cluster.url) == {"scheduled": MESSAGES * PER_MESSAGE}

    restarted = time.monotonic()
    stack.beat("beat2", MIFUMO_DUE_SECONDS="1", MIFUMO_SWEEP_SECONDS="2")
    wait_until(
        lambda: statuses(cluster.url) == {"delivered": MESSAGES * PER_MESSAGE},
        timeout=60,
        interval=0.5,
    )
    recovery = time.monotonic() - restarted

    per_recipient = query(
        cluster.url,
        "SELECT r.id, count(c.id) FROM sms_recipient r "
        "LEFT JOIN sms_carriermessage c ON c.recipient_id = r.id GROUP BY r.id",
    )
    assert len(per_recipient) == MESSAGES * PER_MESSAGE
    assert {count for _, count in per_recipient} == {1}
    assert query(cluster.url, "SELECT max(attempts) FROM sms_recipient")[0][0] == 1
    earliest = query(cluster.url, "SELECT min(sent_at) FROM sms_recipient")[0][0]
    assert earliest >= when
    print(f"beat restart: {MESSAGES * PER_MESSAGE} recipients delivered {recovery:.1f}s after")


def statuses(url: str) -> dict[str, int]:
    return dict(query(url, "SELECT status, count(*) FROM sms_recipient GROUP BY status"))
