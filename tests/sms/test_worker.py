"""The send path through a real Celery worker (and beat) on PostgreSQL and Redis."""

import signal
import socket
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from sms.models import Recipient
from tests.helpers import assert_envelope
from tests.workers import start_beat, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

TZ = "+255712345678"


def statuses(message_id):
    return set(Recipient.objects.filter(message_id=message_id).values_list("status", flat=True))


def test_immediate_send_reaches_delivered(api, celery_worker_factory):
    celery_worker_factory(MIFUMO_SIMULATOR_DELAY="0.2")
    data = assert_envelope(api.post("sms/send/", {"message": "Habari", "recipients": [TZ]}), 200)[
        "data"
    ]
    wait_until(lambda: statuses(data["message_id"]) == {"delivered"}, timeout=30)
    status = api.get(f"sms/status/{data['message_id']}/").json()["data"]
    assert status["status"] == "delivered" and status["delivery_time"]


def test_scheduled_send_waits_then_goes(api, celery_worker_factory, tmp_path):
    celery_worker_factory(MIFUMO_SIMULATOR_DELAY="0")
    beat = start_beat(tmp_path)
    try:
        when = timezone.now() + timedelta(seconds=6)
        data = api.post(
            "sms/send/", {"message": "later", "recipients": [TZ], "schedule_time": when.isoformat()}
        ).json()["data"]
        assert data["status"] == "scheduled"
        time.sleep(3)
        assert statuses(data["message_id"]) == {"scheduled"}
        wait_until(lambda: statuses(data["message_id"]) == {"delivered"}, timeout=40)
        sent_at = Recipient.objects.get(message_id=data["message_id"]).sent_at
        assert sent_at is not None and sent_at >= when
    finally:
        beat.kill()


def test_cancel_before_the_time_means_nothing_is_sent(api, alice, celery_worker_factory, tmp_path):
    celery_worker_factory(MIFUMO_SIMULATOR_DELAY="0")
    beat = start_beat(tmp_path)
    try:
        when = timezone.now() + timedelta(seconds=5)
        data = api.post(
            "sms/send/", {"message": "later", "recipients": [TZ], "schedule_time": when.isoformat()}
        ).json()["data"]
        assert_envelope(api.post(f"sms/{data['message_id']}/cancel/"), 200)
        time.sleep(12)
        assert statuses(data["message_id"]) == {"canceled"}
        alice.refresh_from_db()
        assert alice.balance == 5000
    finally:
        beat.kill()


def test_a_killed_workers_claimed_recipients_are_picked_up_again(
    api, celery_worker_factory, tmp_path
):
    # The first worker's carrier is an SMSC that accepts the connection and never answers,
    # so the worker hangs holding its claim; then it is killed.
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        port = black_hole.getsockname()[1]
        doomed = celery_worker_factory(
            name="doomed",
            MIFUMO_CARRIER="smpp",
            SMPP_HOST="127.0.0.1",
            SMPP_PORT=str(port),
            SMPP_SYSTEM_ID="mifumo",
            SMPP_PASSWORD="secret",
        )
        phones = [f"+2557123{i:02d}789" for i in range(20)]
        data = api.post("sms/send/", {"message": "hi", "recipients": phones}).json()["data"]
        wait_until(lambda: "submitting" in statuses(data["message_id"]), timeout=20)
        doomed.kill(signal.SIGKILL)
    assert statuses(data["message_id"]) <= {"submitting", "queued"}
    celery_worker_factory(
        name="rescuer", MIFUMO_SIMULATOR_DELAY="0", MIFUMO_CLAIM_LEASE_SECONDS="2"
    )
    beat = start_beat(tmp_path, MIFUMO_SWEEP_SECONDS="1")
    try:
        wait_until(lambda: statuses(data["message_id"]) == {"delivered"}, timeout=60)
    finally:
        beat.kill()
    assert Recipient.objects.filter(message_id=data["message_id"]).count() == 20
