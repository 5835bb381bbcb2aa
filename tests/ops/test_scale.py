"""Two web servers and two dispatch workers, started from the compose file, on one database:
5,000 recipients sent through both, each submitted to the carrier exactly once."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Count

from integration.models import Account
from integration.services import account_create, api_key_create
from sms.models import CarrierMessage, Recipient
from tests.ops.stack import Stack, free_port, http, wait_http
from tests.workers import database_url, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

SENDS = 50
PER_SEND = 100
# A dispatch task's log line when it ends: what it returns is the recipients it submitted.
DISPATCHED = re.compile(r"Task sms\.tasks\.dispatch_queued\[[^\]]+\] succeeded in [\d.]+s: (\d+)")
HOST = "sms.example.com"


def phone(n: int) -> str:
    # Ends in 5: the simulator's special endings (0001-0004) never come up.
    return f"+255712{100005 + 10 * n:06d}"


def test_each_of_5000_recipients_is_submitted_once_across_processes(
    tmp_path: Path, clean_broker: str
):
    account = account_create(name="Bulk Sender", balance=Decimal("100000.00"))
    key = api_key_create(account=account, name="load", permission="write").raw
    ports = [free_port(), free_port()]
    stack = Stack(
        overrides={
            "DATABASE_URL": database_url(),
            "REDIS_URL": clean_broker,
            # The key above was signed with the test process's secrets.
            "SECRET_KEY": settings.SECRET_KEY,
            "MIFUMO_KEY_HMAC_SECRET": settings.MIFUMO_KEY_HMAC_SECRET,
            "ALLOWED_HOSTS": HOST,
            "MIFUMO_VAR_DIR": str(tmp_path / "var"),
            "STATIC_ROOT": str(tmp_path / "static"),
            "HOST": "127.0.0.1",
            "WEB_WORKERS": "2",
            "WEB_THREADS": "4",
            "MIFUMO_SIMULATOR_DELAY": "0",
            # Two dispatch processes claiming side by side is what this test is for. A
            # lingering run keeps a stream of sends to itself (a backlog is shared by its
            # helpers), so here each send's wake is a task of its own that either worker
            # may take.
            "MIFUMO_DISPATCH_LINGER_MS": "0",
            "MIFUMO_RATE_SMS_PER_MINUTE": "1000",
            "MIFUMO_RATE_API_PER_HOUR": "100000",
        },
        interpolation={"WORKER_DISPATCH_CONCURRENCY": "2", "WORKER_RECEIPTS_CONCURRENCY": "2"},
    )
    processes = []
    try:
        for index, port in enumerate(ports):
            processes.append(
                stack.start(
                    "web",
                    tmp_path,
                    label=f"web{index}",
                    PORT=str(port),
                    PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"m-web{index}"),
                )
            )
        dispatchers = [
            stack.start(
                "worker-dispatch",
                tmp_path,
                "--hostname",
                f"dispatch{index}@%h",
                label=f"dispatch{index}",
                PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"m-dispatch{index}"),
            )
            for index in range(2)
        ]
        processes += dispatchers
        processes.append(
            stack.start(
                "worker-receipts",
                tmp_path,
                PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m-receipts"),
            )
        )
        for process in processes[2:]:
            process.wait_for("ready.", timeout=90)
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/readyz", headers={"Host": HOST}, timeout=90)

        headers = {
            "Host": HOST,
            "X-Forwarded-Proto": "https",
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
        }

        def send(index: int) -> int:
            body = {
                "message": f"Bulk {index}",
                "recipients": [phone(index * PER_SEND + j) for j in range(PER_SEND)],
            }
            reply = http(
                f"http://127.0.0.1:{ports[index % 2]}/api/integration/v1/sms/send/",
                method="POST",
                headers=headers,
                body=json.dumps(body).encode(),
                timeout=60,
            )
            assert reply.status == 200, reply.body[:500]
            return len(reply.json()["data"]["recipients"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert sum(pool.map(send, range(SENDS))) == SENDS * PER_SEND

        recipients = Recipient.objects.filter(account=account)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if recipients.filter(status="delivered").count() == SENDS * PER_SEND:
                break
            time.sleep(1)
        counts = dict(recipients.values_list("status").annotate(n=Count("id")).order_by())
        assert counts == {"delivered": SENDS * PER_SEND}, counts

        # Exactly once: one claim per recipient and one carrier id per recipient.
        assert recipients.exclude(attempts=1).count() == 0
        parts = CarrierMessage.objects.filter(recipient__account=account)
        assert parts.count() == SENDS * PER_SEND
        assert parts.values("recipient_id").distinct().count() == SENDS * PER_SEND
        account.refresh_from_db()
        assert account.balance == Decimal("50000.00")
        assert Account.objects.get(pk=account.pk).ledger.filter(kind="refund").count() == 0
        # Both web servers took sends. The dispatch tasks, on whichever worker processes took
        # them (the wake publishes one per wake, so one worker's two processes may take them
        # all), report every recipient submitted, once: their results add up to the sends.
        for web in processes[:2]:
            assert web.output().count('"path": "/api/integration/v1/sms/send/"') == SENDS // 2

        def submitted() -> int:
            return sum(
                int(count)
                for worker in dispatchers
                for count in DISPATCHED.findall(worker.output())
            )

        # A task may still be on its last look when the recipients are all delivered.
        wait_until(lambda: submitted() >= SENDS * PER_SEND, timeout=60, interval=0.5)
        assert submitted() == SENDS * PER_SEND
    finally:
        for process in processes:
            process.kill()
