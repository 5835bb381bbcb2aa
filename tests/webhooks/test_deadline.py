"""One deadline, MIFUMO_WEBHOOK_TIMEOUT, over connecting, sending and reading the whole answer:
a receiver that dribbles its answer a byte at a time cannot hold a worker past it, the
delivery's lease outlasts any attempt, and a Celery time limit backstops the task."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from sms.models import Recipient
from tests.helpers import assert_envelope
from tests.webhooks.conftest import change_status, make_message
from tests.webhooks.slow_receiver import ANSWER, DribblingReceiver
from tests.workers import wait_until
from webhooks import delivery as webhook_delivery
from webhooks import tasks, transport
from webhooks.models import Delivery, DeliveryAttempt, Event

TIMEOUT = 2
# Time beyond the deadline an attempt may take: the last socket operation's return and the
# bookkeeping around it.
SLACK = 1.0


@pytest.fixture(autouse=True)
def _deadline(settings: Any) -> None:
    settings.MIFUMO_WEBHOOK_TIMEOUT = TIMEOUT


@pytest.fixture
def dribbler() -> Iterator[Any]:
    made: list[DribblingReceiver] = []

    def make(**kwargs: Any) -> DribblingReceiver:
        made.append(DribblingReceiver(**kwargs))
        return made[-1]

    yield make
    for server in made:
        server.stop()


HEADERS_END = ANSWER.index(b"\r\n\r\n") + 4


@pytest.mark.parametrize(
    ("fast", "where"),
    [
        (0, "status line"),
        (len(b"HTTP/1.1 200 OK\r\n"), "headers"),
        (HEADERS_END, "body"),
    ],
)
def test_a_dribbling_receiver_is_cut_off_at_the_deadline(
    dribbler: Any, fast: int, where: str
) -> None:
    # The whole answer would take ~50 s at one byte every 0.3 s.
    server = dribbler(fast=fast, interval=0.3)
    started = time.monotonic()
    outcome = transport.post(server.url, body=b"{}", headers={}, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + SLACK, (where, elapsed)
    assert server.requests == 1
    if where == "body":
        # The status arrived in time; only the body was cut short.
        assert outcome.status_code == 200
    else:
        assert outcome.status_code is None
        assert outcome.error == f"Timed out after {TIMEOUT} s"


def test_a_receiver_that_never_answers_is_cut_off(dribbler: Any) -> None:
    server = dribbler(fast=0, interval=60)
    started = time.monotonic()
    outcome = transport.post(server.url, body=b"{}", headers={}, timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert outcome.error == f"Timed out after {TIMEOUT} s"


def _slow_lookups(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    # A receiver's own DNS server can answer slowly; no local resolver can be made to, so the
    # lookup is slowed here.
    real = socket.getaddrinfo

    def slow_lookup(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            time.sleep(seconds)
        # The receivers listen on 127.0.0.1 only.
        return [info for info in real(host, *args, **kwargs) if info[0] == socket.AF_INET]

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)


def test_a_tls_handshake_gets_only_what_is_left_of_the_deadline(
    dribbler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lookup takes most of the deadline, then the server stalls the handshake: a
    # handshake record announcing 16 KiB, sent one byte every 0.3 s.
    _slow_lookups(monkeypatch, TIMEOUT * 0.6)
    record = b"\x16\x03\x03\x40\x00" + b"\x00" * 16384
    server = dribbler(fast=0, interval=0.3, answer=record, read_request=False)
    started = time.monotonic()
    outcome = transport.post(
        f"https://localhost:{server.port}/hook", body=b"{}", headers={}, timeout=TIMEOUT
    )
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert server.connections == 1
    assert outcome.status_code is None
    assert outcome.error == f"Timed out after {TIMEOUT} s"


def test_name_resolution_counts_against_the_deadline(
    dribbler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = dribbler(fast=len(ANSWER))
    _slow_lookups(monkeypatch, TIMEOUT * 3)
    started = time.monotonic()
    outcome = transport.post(
        f"http://localhost:{server.port}/hook", body=b"{}", headers={}, timeout=TIMEOUT
    )
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert outcome.status_code is None and "Timed out" in outcome.error


def test_a_fast_receiver_after_a_slow_one_gets_a_fresh_deadline(dribbler: Any) -> None:
    slow = dribbler(fast=0, interval=0.3)
    fast = dribbler(fast=len(ANSWER))
    transport.post(slow.url, body=b"{}", headers={}, timeout=TIMEOUT)
    outcome = transport.post(fast.url, body=b"{}", headers={}, timeout=TIMEOUT)
    assert outcome.succeeded, outcome.error
    # And the same receiver twice over one kept-alive connection.
    again = transport.post(fast.url, body=b"{}", headers={}, timeout=TIMEOUT)
    assert again.succeeded, again.error
    assert (fast.connections, fast.requests) == (1, 2)


def test_the_lease_outlasts_the_task_time_limit_which_outlasts_the_deadline() -> None:
    lease = webhook_delivery.lease().total_seconds()
    for task in (tasks.deliver, tasks.deliver_each, tasks.deliver_due):
        assert task.time_limit is not None, task.name
        assert TIMEOUT < task.time_limit < lease, task.name
        assert task.soft_time_limit is None or task.soft_time_limit < task.time_limit


@pytest.mark.django_db(transaction=True)
def test_nobody_takes_over_a_delivery_while_its_attempt_runs(alice: Any, dribbler: Any) -> None:
    server = dribbler(fast=0, interval=0.3)
    message = make_message(alice, webhook_url=server.url)
    event = Event.objects.create(account=alice, type="message.sent", message=message, body="{}")
    # Made directly: a status change would deliver it at once through the eager queue.
    delivery = Delivery.objects.create(
        event=event, account=alice, url=server.url, next_attempt_at=timezone.now()
    )
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(webhook_delivery.delivery_attempt(delivery_id=delivery.pk))
    )
    worker.start()
    wait_until(lambda: server.requests == 1, timeout=5)
    # A second worker (or the sweep) during the attempt finds it held.
    assert webhook_delivery.delivery_attempt(delivery_id=delivery.pk) is None
    worker.join(TIMEOUT + 5)
    assert not worker.is_alive()
    [attempt] = results
    assert attempt is not None and attempt.pk is not None
    assert attempt.error == f"Timed out after {TIMEOUT} s"
    delivery.refresh_from_db()
    # Its result counted: the lease was still held when it was recorded.
    assert delivery.attempts == 1 and delivery.last_error == attempt.error
    assert delivery.locked_until is None and delivery.status == "pending"
    assert DeliveryAttempt.objects.count() == 1
    assert server.connections == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_dribbling_receiver_does_not_hold_the_only_worker(
    api: Any, alice: Any, dribbler: Any, celery_worker_factory: Any
) -> None:
    server = dribbler(fast=0, interval=1.0)  # ~150 s for the whole answer
    celery_worker_factory(
        concurrency=1,
        MIFUMO_WEBHOOK_TIMEOUT=str(TIMEOUT),
        MIFUMO_WEBHOOK_ALLOW_PRIVATE="true",
        MIFUMO_SIMULATOR_DELAY="60",
    )
    change_status(make_message(alice, webhook_url=server.url), Recipient.Status.SENT)
    wait_until(lambda: server.requests == 1, timeout=15)
    probe_started = time.monotonic()
    sent = api.post("sms/send/", {"message": "probe", "recipients": ["+255712345678"]})
    probe = assert_envelope(sent, 200)["data"]["message_id"]

    wait_until(
        lambda: not Recipient.objects.filter(message_id=probe, status="queued").exists(),
        timeout=TIMEOUT + 10,
    )
    assert time.monotonic() - probe_started < TIMEOUT + 10
    delivery = Delivery.objects.get()
    wait_until(lambda: Delivery.objects.get(pk=delivery.pk).attempts == 1, timeout=5)
    delivery.refresh_from_db()
    assert delivery.last_error == f"Timed out after {TIMEOUT} s"
    assert delivery.next_attempt_at is not None and delivery.next_attempt_at > timezone.now()
    assert server.connections == 1
