"""The whole path over SMPP, with nothing faked: ``POST sms/send/`` -> a real Celery worker
routes and hands off -> ``manage.py run_smpp`` submits over a real bind to the test SMSC ->
the SMSC's deliver_sm receipts -> the worker ingests them -> ``GET sms/status/<id>/``."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sms.models import CarrierMessage, CarrierRoute, Recipient, SubmitAttempt
from tests.carriers.smsc import Smsc
from tests.helpers import assert_envelope
from tests.workers import Process, service_env, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.django_db(transaction=True),
]

SWAHILI_UCS2 = (
    "Habari! Malipo yako ya TSh 25,000 yamepokelewa ✓. Asante kwa kutumia huduma yetu — "
    "karibu tena 😊"
)


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc(auto_receipt="DELIVRD") as server:
        yield server


@pytest.fixture
def smpp_env(smsc: Smsc, settings: Any) -> dict[str, str]:
    """The SMPP carrier, configured alike here (via settings) and in the subprocesses (env)."""
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "smpp": {
            "BACKEND": "sms.carriers.smpp.SmppCarrier",
            "HOST": "127.0.0.1",
            "PORT": smsc.port,
            "SYSTEM_ID": "mifumo",
            "PASSWORD": "secret",
        },
    }
    return {
        "SMPP_HOST": "127.0.0.1",
        "SMPP_PORT": str(smsc.port),
        "SMPP_SYSTEM_ID": "mifumo",
        "SMPP_PASSWORD": "secret",
        "MIFUMO_SIMULATOR_DELAY": "0",
    }


@pytest.fixture
def run_smpp(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(**env: str) -> Process:
        process = Process(
            [sys.executable, "manage.py", "run_smpp"],
            service_env(**env),
            tmp_path / f"run_smpp{len(started)}.log",
        )
        started.append(process)
        process.wait_for("run_smpp ready", timeout=30)
        return process

    yield start
    for process in started:
        process.kill()


def status_of(api: Any, message_id: str) -> dict[str, Any]:
    body = assert_envelope(api.get(f"sms/status/{message_id}/"), 200)
    return dict(body["data"])


def delivered(api: Any, message_id: str) -> Callable[[], bool]:
    return lambda: status_of(api, message_id)["status"] == "delivered"


def test_send_over_smpp_reaches_delivered_including_multipart_ucs2(
    api: Any,
    alice: Any,
    smsc: Smsc,
    smpp_env: dict[str, str],
    settings: Any,
    celery_worker_factory: Any,
    run_smpp: Callable[..., Process],
) -> None:
    settings.MIFUMO_CARRIER = "smpp"
    alice.max_message_length = 500
    alice.save(update_fields=["max_message_length"])
    celery_worker_factory(MIFUMO_CARRIER="smpp", **smpp_env)
    process = run_smpp(MIFUMO_CARRIER="smpp", **smpp_env)

    plain = ["+255754000167", "+255754000267", "+255754000367"]
    first = assert_envelope(api.post("sms/send/", {"message": "Habari", "recipients": plain}), 200)
    ucs2 = ["+255784000167", "+255784000267"]
    second = assert_envelope(
        api.post("sms/send/", {"message": SWAHILI_UCS2, "recipients": ucs2}), 200
    )
    assert (second["data"]["encoding"], second["data"]["segments"]) == ("UCS-2", 2)

    for body in (first, second):
        message_id = body["data"]["message_id"]
        wait_until(delivered(api, message_id), timeout=60)
        status = status_of(api, message_id)
        assert status["delivery_time"], status

    # Each UCS-2 recipient went as concatenated parts, every part acknowledged and receipted.
    multipart = Recipient.objects.filter(message_id=second["data"]["message_id"])
    for row in multipart:
        assert row.status == "delivered" and row.carrier == "smpp" and row.delivered_at
        assert CarrierMessage.objects.filter(recipient=row).count() == 2
    parts = [s for s in smsc.accepted() if s.destination_addr in {p[1:] for p in ucs2}]
    assert len(parts) == 4
    assert all(s.data_coding == 0x08 for s in parts)
    rebuilt = sorted(parts, key=lambda s: (s.destination_addr, s.segment[2]))
    assert "".join(s.text for s in rebuilt[:2]) == SWAHILI_UCS2
    assert set(smsc.accepted_by_destination().values()) == {1, 2}
    assert SubmitAttempt.objects.filter(carrier="smpp").exists()

    process.popen.send_signal(signal.SIGTERM)
    assert process.popen.wait(20) == 0
    assert smsc.wait_until(lambda: smsc.unbinds == 1)
    assert "run_smpp stopped: 5 recipients submitted" in process.output()


def test_a_route_sends_one_network_over_smpp_and_the_rest_to_the_default_carrier(
    api: Any,
    smsc: Smsc,
    smpp_env: dict[str, str],
    celery_worker_factory: Any,
    run_smpp: Callable[..., Process],
) -> None:
    CarrierRoute.objects.create(prefix="25575", carriers=["smpp"], description="Vodacom")
    celery_worker_factory(**smpp_env)
    run_smpp(**smpp_env)
    vodacom, airtel = "+255754001167", "+255784001167"
    body = assert_envelope(
        api.post("sms/send/", {"message": "Habari", "recipients": [vodacom, airtel]}), 200
    )
    message_id = body["data"]["message_id"]
    wait_until(delivered(api, message_id), timeout=60)
    carriers = dict(Recipient.objects.filter(message_id=message_id).values_list("phone", "carrier"))
    assert carriers == {vodacom: "smpp", airtel: "simulator"}
    assert [s.destination_addr for s in smsc.accepted()] == [vodacom[1:]]


def test_an_smsc_throttling_at_n_per_second_gets_everything_at_that_rate(
    api: Any,
    alice: Any,
    smsc: Smsc,
    smpp_env: dict[str, str],
    settings: Any,
    celery_worker_factory: Any,
    run_smpp: Callable[..., Process],
) -> None:
    rate = 20
    smsc.throttle_rate = rate  # ESME_RTHROTTLED past 20 submits in any second
    settings.MIFUMO_CARRIER = "smpp"
    env = {**smpp_env, "SMPP_RATE": str(rate), "MIFUMO_CARRIER": "smpp"}
    celery_worker_factory(**env)
    run_smpp(**env)
    phones = [f"+25575410{n:04d}" for n in range(100)]
    body = assert_envelope(api.post("sms/send/", {"message": "Habari", "recipients": phones}), 200)
    message_id = body["data"]["message_id"]
    wait_until(delivered(api, message_id), timeout=60)

    assert status_of(api, message_id)["counts"] == {"delivered": 100}
    assert sorted(smsc.accepted_by_destination().values()) == [1] * 100
    times = sorted(s.received_at for s in smsc.accepted())
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert rate * 0.9 <= achieved <= rate * 1.1, achieved
    # Paced, so hardly refused; whatever was refused went again without a new attempt.
    assert smsc.throttled <= 5
    assert set(
        Recipient.objects.filter(message_id=message_id).values_list("attempts", flat=True)
    ) == {1}
